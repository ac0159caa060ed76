//! Mean ± std over seeds with polars, and the Markdown/CSV/Parquet writers.

use std::path::Path;

use polars::prelude::*;

use std::collections::BTreeMap;

use reusebench_results::{StoredRow, names};

use crate::stats::Paired;

use crate::error::ReportError;
use crate::rows::{FailedCell, coord_column};

/// Metrics shown first, in this order; others follow alphabetically.
const PREFERRED: [&str; 12] = [
    names::AVG_ACC_CLASS_IL,
    names::AVG_ACC_TASK_IL,
    names::AVG_ACC_DOMAIN_IL,
    names::FORGETTING_CLASS_IL,
    names::FORGETTING_TASK_IL,
    names::BWT_CLASS_IL,
    names::BWT_TASK_IL,
    names::KNN_ACC,
    names::KNN_FORGETTING,
    names::ADAPT_ACC,
    names::TEST_ACC,
    names::TRAIN_LOSS,
];

#[derive(Debug, Clone)]
pub struct SummaryRow {
    pub experiment: String,
    pub protocol: String,
    pub method: String,
    /// Values of the extra axis columns, in `Summary::axis_columns` order.
    pub axes: Vec<String>,
    /// Coordinates, in `Summary::coord_columns` order ("" where the row has none).
    pub coords: Vec<String>,
    pub metric: String,
    pub mean: f64,
    pub std: f64,
    /// Half-width of the 95% confidence interval of the mean (Student's t).
    pub ci95: f64,
    pub n: u32,
}

#[derive(Debug, Clone)]
pub struct Summary {
    pub axis_columns: Vec<String>,
    pub coord_columns: Vec<String>,
    pub rows: Vec<SummaryRow>,
    pub frame: DataFrame,
}

impl SummaryRow {
    pub fn is_scalar(&self) -> bool {
        self.coords.iter().all(String::is_empty)
    }
}

/// Aggregates every metric over seeds, keeping coordinates apart: a matrix
/// entry or a curve point is averaged with the same point of the other
/// seeds, never into one number.
pub fn summarize(
    frame: &DataFrame,
    axis_columns: &[String],
    coord_columns: &[String],
) -> Result<Summary, ReportError> {
    let mut keys: Vec<String> = vec!["experiment".into(), "protocol".into(), "method".into()];
    keys.extend(axis_columns.iter().cloned());
    keys.push("metric".into());
    let coord_names: Vec<String> = coord_columns
        .iter()
        .map(|c| coord_column(c, axis_columns))
        .collect();
    keys.extend(coord_names.iter().cloned());
    let key_exprs: Vec<Expr> = keys.iter().map(|k| col(k.as_str())).collect();
    let agg = frame
        .clone()
        .lazy()
        .group_by(key_exprs)
        .agg([
            col("value").mean().alias("mean"),
            col("value").std(1).alias("std"),
            col("value").count().alias("n"),
        ])
        .sort(
            keys.iter()
                .map(|k| k.as_str().into())
                .collect::<Vec<PlSmallStr>>(),
            SortMultipleOptions::default().with_maintain_order(true),
        )
        .collect()?;

    let text = |name: &str| -> Result<Vec<String>, ReportError> {
        let ca = agg.column(name)?.str()?.clone();
        Ok((0..ca.len())
            .map(|i| ca.get(i).unwrap_or_default().to_string())
            .collect())
    };
    let num = |name: &str| -> Result<Vec<f64>, ReportError> {
        let ca = agg.column(name)?.cast(&DataType::Float64)?.f64()?.clone();
        Ok((0..ca.len())
            .map(|i| ca.get(i).unwrap_or(f64::NAN))
            .collect())
    };
    let (experiment, protocol, method, metric) = (
        text("experiment")?,
        text("protocol")?,
        text("method")?,
        text("metric")?,
    );
    // Axis and coordinate columns are typed; shown as text.
    let shown = |name: &str| -> Result<Vec<String>, ReportError> {
        let c = agg.column(name)?.cast(&DataType::String)?;
        let ca = c.str()?.clone();
        Ok((0..ca.len())
            .map(|i| ca.get(i).unwrap_or_default().to_string())
            .collect())
    };
    let axes: Vec<Vec<String>> = axis_columns
        .iter()
        .map(|a| shown(a))
        .collect::<Result<_, _>>()?;
    let coords: Vec<Vec<String>> = coord_names
        .iter()
        .map(|c| shown(c))
        .collect::<Result<_, _>>()?;
    let (mean, std, n) = (num("mean")?, num("std")?, num("n")?);
    let ci95: Vec<f64> = std
        .iter()
        .zip(&n)
        .map(|(&s, &k)| crate::stats::ci95_half_width(s, k as usize))
        .collect();
    let mut agg = agg;
    agg.with_column(Column::new("ci95".into(), ci95.clone()))?;
    let rows = (0..agg.height())
        .map(|i| SummaryRow {
            experiment: experiment[i].clone(),
            protocol: protocol[i].clone(),
            method: method[i].clone(),
            axes: axes.iter().map(|a| a[i].clone()).collect(),
            coords: coords.iter().map(|c| c[i].clone()).collect(),
            metric: metric[i].clone(),
            mean: mean[i],
            std: std[i],
            ci95: ci95[i],
            n: n[i] as u32,
        })
        .collect();
    Ok(Summary {
        axis_columns: axis_columns.to_vec(),
        coord_columns: coord_columns.to_vec(),
        rows,
        frame: agg,
    })
}

/// A temporary name beside `path`, this process's own: workers sharing a
/// results folder may write the report at the same time, and each renames
/// a whole file into place.
fn temporary(path: &Path) -> std::path::PathBuf {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    path.with_file_name(format!(".{name}.{}.tmp", std::process::id()))
}

/// Writes `bytes` to `path` through a temporary file and a rename.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), ReportError> {
    let tmp = temporary(path);
    std::fs::write(&tmp, bytes).map_err(|e| ReportError::io(&tmp, e))?;
    std::fs::rename(&tmp, path).map_err(|e| ReportError::io(path, e))
}

pub fn write_parquet(frame: &mut DataFrame, path: &Path) -> Result<(), ReportError> {
    let tmp = temporary(path);
    let file = std::fs::File::create(&tmp).map_err(|e| ReportError::io(&tmp, e))?;
    ParquetWriter::new(file).finish(frame)?;
    std::fs::rename(&tmp, path).map_err(|e| ReportError::io(path, e))
}

pub fn write_csv(summary: &Summary, path: &Path) -> Result<(), ReportError> {
    let tmp = temporary(path);
    let file = std::fs::File::create(&tmp).map_err(|e| ReportError::io(&tmp, e))?;
    let mut frame = summary.frame.clone();
    CsvWriter::new(file).finish(&mut frame)?;
    std::fs::rename(&tmp, path).map_err(|e| ReportError::io(path, e))
}

fn metric_order(metrics: &mut [String]) {
    metrics.sort_by_key(|m| {
        (
            PREFERRED
                .iter()
                .position(|p| p == m)
                .unwrap_or(PREFERRED.len()),
            m.clone(),
        )
    });
}

/// `mean ± std [lo, hi]`: the spread over seeds and the 95% confidence
/// interval of the mean; the mean alone for one seed.
fn cell(r: &SummaryRow) -> String {
    spread_cell(r.mean, r.std, r.ci95, r.n as usize)
}

/// [`spread_cell`] of one value per seed; "–" without any.
pub(crate) fn seeds_cell(seeds: &BTreeMap<u64, f64>) -> String {
    let v: Vec<f64> = seeds.values().copied().collect();
    if v.is_empty() {
        return "–".into();
    }
    let (mean, std) = crate::plot::mean_std(&v);
    spread_cell(
        mean,
        std,
        crate::stats::ci95_half_width(std, v.len()),
        v.len(),
    )
}

/// [`cell`]'s text from the numbers: `mean ± std [mean − half, mean +
/// half]`, the mean alone below two values, "–" without one.
pub(crate) fn spread_cell(mean: f64, std: f64, half: f64, n: usize) -> String {
    if mean.is_nan() {
        return "–".into();
    }
    let d = decimals(mean);
    if n < 2 || std.is_nan() {
        format!("{mean:.d$}")
    } else {
        format!(
            "{mean:.d$} ± {std:.d$} [{:.d$}, {:.d$}]",
            mean - half,
            mean + half
        )
    }
}

/// Two decimals, or as many as two significant digits of a smaller mean
/// need (at most 8): a parameter change of 0.0034 would print as 0.00.
fn decimals(mean: f64) -> usize {
    let magnitude = mean.abs();
    if magnitude == 0.0 || magnitude >= 0.1 {
        return 2;
    }
    (1 - magnitude.log10().floor() as i64).clamp(2, 8) as usize
}

/// The header of `summary.md`: counts and what the numbers are.
pub fn markdown_header(
    done: usize,
    failed: usize,
    not_in_grid: usize,
    kept_stale: &[(String, String)],
) -> String {
    let mut out = String::from("# Results\n\n");
    out.push_str(&format!(
        "{done} cell(s) done, {failed} failed. Values are mean ± std over seeds [95% confidence interval of the mean, Student's t] (n = seeds); accuracies in %.\n"
    ));
    if not_in_grid > 0 {
        out.push_str(&format!(
            "\n{not_in_grid} cell folder(s) under cells/ are not part of the current grid (left by an earlier version of it) and are not included.\n"
        ));
    }
    if !kept_stale.is_empty() {
        out.push_str(&format!(
            "\n**Stale results included** (`run --keep-stale`): {} cell(s) ran under another config, input or build than today's:\n\n",
            kept_stale.len()
        ));
        for (cell, why) in kept_stale {
            out.push_str(&format!("- {cell}: {why}\n"));
        }
    }
    out
}

/// The failed cells with their reasons.
pub fn failed_markdown(failed: &[FailedCell]) -> String {
    let mut out = String::new();
    if !failed.is_empty() {
        out.push_str("\n## Failed cells\n\n| cell | experiment | method | label | seed | reason |\n| --- | --- | --- | --- | --- | --- |\n");
        for f in failed {
            let reason = f.reason.replace('|', "\\|").replace('\n', " ");
            out.push_str(&format!(
                "| {} | {} | {} | {} | {} | {} |\n",
                f.cell, f.experiment, f.method, f.label, f.seed, reason
            ));
        }
    }
    out
}

/// Experiments in the order of the summary (sorted by name).
pub fn experiments(summary: &Summary) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = Vec::new();
    for r in &summary.rows {
        if !out.iter().any(|(e, _)| e == &r.experiment) {
            out.push((r.experiment.clone(), r.protocol.clone()));
        }
    }
    out
}

/// An experiment's scalar metrics: a row per method (and extra axis
/// values), a column per metric, `mean ± std` over seeds and the number of
/// seeds.
pub fn scalar_table(summary: &Summary, exp: &str) -> String {
    let mut out = String::new();
    let rows: Vec<&SummaryRow> = summary
        .rows
        .iter()
        .filter(|r| r.experiment == exp && r.is_scalar())
        .collect();
    if rows.is_empty() {
        return out;
    }
    let mut metrics: Vec<String> = rows.iter().map(|r| r.metric.clone()).collect();
    metrics.sort();
    metrics.dedup();
    metric_order(&mut metrics);
    let (axis_idx, groups) = method_groups(summary, &rows);
    let mut header = vec!["method".to_string()];
    header.extend(axis_idx.iter().map(|&a| summary.axis_columns[a].clone()));
    header.extend(metrics.iter().cloned());
    header.push("n".into());
    out.push_str(&format!("| {} |\n", header.join(" | ")));
    out.push_str(&format!("|{}\n", " --- |".repeat(header.len())));
    for (method, axes) in &groups {
        let mut line = vec![method.clone()];
        line.extend(axes.iter().cloned());
        let mut n = 0;
        for m in &metrics {
            let hit = rows.iter().find(|r| {
                &r.method == method && &axis_values(r, &axis_idx) == axes && &r.metric == m
            });
            match hit {
                Some(r) => {
                    n = n.max(r.n);
                    line.push(cell(r));
                }
                None => line.push("–".into()),
            }
        }
        line.push(n.to_string());
        out.push_str(&format!("| {} |\n", line.join(" | ")));
    }
    out
}

fn axis_values(r: &SummaryRow, axis_idx: &[usize]) -> Vec<String> {
    axis_idx.iter().map(|&a| r.axes[a].clone()).collect()
}

/// Axis columns set inside these rows, and the (method, axis values)
/// groups in order of first appearance.
fn method_groups(
    summary: &Summary,
    rows: &[&SummaryRow],
) -> (Vec<usize>, Vec<(String, Vec<String>)>) {
    let axis_idx: Vec<usize> = (0..summary.axis_columns.len())
        .filter(|&a| rows.iter().any(|r| !r.axes[a].is_empty()))
        .collect();
    let mut groups: Vec<(String, Vec<String>)> = Vec::new();
    for r in rows {
        let key = (r.method.clone(), axis_values(r, &axis_idx));
        if !groups.contains(&key) {
            groups.push(key);
        }
    }
    (axis_idx, groups)
}

/// An experiment's metrics with coordinates, except training curves (they
/// are plotted): one table per metric, a row per point, a column per
/// method group.
pub fn coordinate_tables(summary: &Summary, exp: &str) -> String {
    let mut out = String::new();
    let rows: Vec<&SummaryRow> = summary
        .rows
        .iter()
        .filter(|r| r.experiment == exp && !r.is_scalar() && !is_curve(&r.metric))
        .collect();
    let mut metrics: Vec<String> = Vec::new();
    for r in &rows {
        if !metrics.contains(&r.metric) {
            metrics.push(r.metric.clone());
        }
    }
    let (axis_idx, groups) = method_groups(summary, &rows);
    let group_name = |(m, a): &(String, Vec<String>)| {
        std::iter::once(m.clone())
            .chain(
                axis_idx
                    .iter()
                    .zip(a)
                    .filter(|(_, v)| !v.is_empty())
                    .map(|(&i, v)| format!("{}={v}", summary.axis_columns[i])),
            )
            .collect::<Vec<_>>()
            .join(" ")
    };
    for metric in metrics {
        let metric_rows: Vec<&&SummaryRow> = rows.iter().filter(|r| r.metric == metric).collect();
        let used: Vec<usize> = (0..summary.coord_columns.len())
            .filter(|&c| metric_rows.iter().any(|r| !r.coords[c].is_empty()))
            .collect();
        let mut points: Vec<Vec<String>> = Vec::new();
        for r in &metric_rows {
            let p: Vec<String> = used.iter().map(|&c| r.coords[c].clone()).collect();
            if !points.contains(&p) {
                points.push(p);
            }
        }
        out.push_str(&format!("\n### {metric}\n\n"));
        let mut header: Vec<String> = used
            .iter()
            .map(|&c| summary.coord_columns[c].clone())
            .collect();
        header.extend(groups.iter().map(group_name));
        out.push_str(&format!("| {} |\n", header.join(" | ")));
        out.push_str(&format!("|{}\n", " --- |".repeat(header.len())));
        for p in &points {
            let mut line = p.clone();
            for (method, axes) in &groups {
                let hit = metric_rows.iter().find(|r| {
                    &r.method == method
                        && &axis_values(r, &axis_idx) == axes
                        && &used
                            .iter()
                            .map(|&c| r.coords[c].clone())
                            .collect::<Vec<_>>()
                            == p
                });
                line.push(hit.map(|r| cell(r)).unwrap_or_else(|| "–".into()));
            }
            out.push_str(&format!("| {} |\n", line.join(" | ")));
        }
    }
    out
}

/// A training-curve metric (plotted, not tabulated).
pub fn is_curve(metric: &str) -> bool {
    [names::CURVE_LOSS, names::CURVE_LR, names::CURVE_SECONDS].contains(&metric)
}

/// A method group (method, extra axis values) and a metric.
type GroupMetric = ((String, Vec<String>), String);

/// An experiment's methods against its baseline on the same seeds.
#[derive(Debug, Clone, Default)]
pub struct PairedResults {
    pub baseline: String,
    pub by: BTreeMap<GroupMetric, Paired>,
}

/// Paired differences (method − baseline) of every scalar metric, per seed
/// the two share, for every method group of `experiment`; the baseline of a
/// group is the baseline method with the same extra axis values.
pub fn paired_results(
    rows: &[StoredRow],
    experiment: &str,
    baseline: &str,
    axis_columns: &[String],
) -> PairedResults {
    let mut values: BTreeMap<GroupMetric, BTreeMap<u64, f64>> = BTreeMap::new();
    // Timing metrics measure the machine, not the method: no test on them.
    for r in rows.iter().filter(|r| {
        r.experiment == experiment
            && r.is_scalar()
            && r.value.is_finite()
            && !names::TIMING.contains(&r.metric.as_str())
    }) {
        let axes: Vec<String> = axis_columns.iter().map(|a| r.axis(a)).collect();
        values
            .entry(((r.method.clone(), axes), r.metric.clone()))
            .or_default()
            .insert(r.seed, r.value);
    }
    let mut by = BTreeMap::new();
    for (((method, axes), metric), seeds) in &values {
        if method == baseline {
            continue;
        }
        let key = ((baseline.to_string(), axes.clone()), metric.clone());
        let Some(base) = values.get(&key) else {
            continue;
        };
        let diffs = crate::stats::paired_diffs(seeds, base);
        if !diffs.is_empty() {
            by.insert(
                ((method.clone(), axes.clone()), metric.clone()),
                Paired::of(&diffs),
            );
        }
    }
    PairedResults {
        baseline: baseline.to_string(),
        by,
    }
}

/// The paired table of an experiment: a row per method group, a column per
/// metric, `Δ [lo, hi]` with `*` where the interval excludes 0.
pub fn paired_markdown(summary: &Summary, exp: &str, paired: &PairedResults) -> String {
    if paired.by.is_empty() {
        return String::new();
    }
    let mut metrics: Vec<String> = paired.by.keys().map(|(_, m)| m.clone()).collect();
    metrics.sort();
    metrics.dedup();
    metric_order(&mut metrics);
    let mut groups: Vec<(String, Vec<String>)> = Vec::new();
    for (g, _) in paired.by.keys() {
        if !groups.contains(g) {
            groups.push(g.clone());
        }
    }
    let used: Vec<usize> = (0..summary.axis_columns.len())
        .filter(|&a| groups.iter().any(|(_, axes)| !axes[a].is_empty()))
        .collect();
    let mut out = format!(
        "\n### {exp}: paired against `{}` (same seeds)\n\nΔ = method − {}, mean over the seeds both ran [95% confidence interval, paired t]; `*` marks a difference whose interval excludes 0; the others are not significant at 5%.\n\n",
        paired.baseline, paired.baseline
    );
    let mut header = vec!["method".to_string()];
    header.extend(used.iter().map(|&a| summary.axis_columns[a].clone()));
    header.extend(metrics.iter().map(|m| format!("Δ {m}")));
    header.push("pairs".into());
    out.push_str(&format!("| {} |\n", header.join(" | ")));
    out.push_str(&format!("|{}\n", " --- |".repeat(header.len())));
    for g in &groups {
        let mut line = vec![g.0.clone()];
        line.extend(used.iter().map(|&a| g.1[a].clone()));
        let mut pairs = 0;
        for m in &metrics {
            match paired.by.get(&(g.clone(), m.clone())) {
                Some(p) => {
                    pairs = pairs.max(p.n);
                    line.push(paired_cell(p));
                }
                None => line.push("–".into()),
            }
        }
        line.push(pairs.to_string());
        out.push_str(&format!("| {} |\n", line.join(" | ")));
    }
    out
}

pub(crate) fn paired_cell(p: &Paired) -> String {
    if p.n < 2 {
        return format!("{:+.2}", p.mean);
    }
    format!(
        "{:+.2} [{:+.2}, {:+.2}]{}",
        p.mean,
        p.mean - p.half_width,
        p.mean + p.half_width,
        if p.significant() { " *" } else { "" }
    )
}

/// One benchmark's column group in the comparison table.
pub struct Benchmark<'a> {
    pub label: String,
    pub summary: &'a Summary,
    pub experiment: String,
    /// Paired tests against the grid's baseline, where it names one.
    pub paired: Option<PairedResults>,
    /// The baseline's name (the paired tests' and the adaptation columns').
    pub baseline: Option<String>,
    /// Adapted accuracy per shots per class, when the grid adapts at
    /// several shots (those rows are not scalars).
    pub adaptation: Vec<(String, SeedValues)>,
}

/// Per (method, extra axis values): seed → value.
pub type SeedValues = BTreeMap<(String, Vec<String>), BTreeMap<u64, f64>>;

/// A column of the comparison: a scalar metric, or the adapted accuracy at
/// one shots entry of a benchmark's `adaptation`.
enum ComparisonColumn {
    Metric(String),
    Adapted(usize),
}

/// The table continual-learning papers print: methods as rows; for every
/// benchmark, average accuracy, forgetting, kNN accuracy and adaptation
/// accuracy, `mean ± std` over seeds. The setting (class- or
/// domain-incremental) is the one each benchmark's rows carry.
pub fn comparison_markdown(benchmarks: &[Benchmark]) -> String {
    let mut methods: Vec<String> = Vec::new();
    let mut header = vec!["method".to_string()];
    let mut columns: Vec<(usize, ComparisonColumn)> = Vec::new();
    for (b, bench) in benchmarks.iter().enumerate() {
        let rows: Vec<&SummaryRow> = bench
            .summary
            .rows
            .iter()
            .filter(|r| r.experiment == bench.experiment && r.is_scalar())
            .collect();
        let setting = if rows.iter().any(|r| r.metric == "avg_acc_domain_il") {
            "domain_il"
        } else {
            "class_il"
        };
        for (metric, title) in [
            (format!("avg_acc_{setting}"), "avg acc"),
            (format!("forgetting_{setting}"), "forgetting"),
            ("knn_acc".to_string(), "kNN acc"),
            ("adapt_acc".to_string(), "adapt acc"),
        ] {
            if rows.iter().any(|r| r.metric == metric) {
                header.push(format!("{}: {title}", bench.label));
                columns.push((b, ComparisonColumn::Metric(metric)));
            }
        }
        for (i, (shots, groups)) in bench.adaptation.iter().enumerate() {
            header.push(format!("{}: adapt acc, {shots} shots", bench.label));
            columns.push((b, ComparisonColumn::Adapted(i)));
            for (method, axes) in groups.keys() {
                let label = group_text(method, axes);
                if !methods.contains(&label) {
                    methods.push(label);
                }
            }
        }
        for r in rows {
            let label = method_label(r);
            if !methods.contains(&label) {
                methods.push(label);
            }
        }
    }
    let mut out = String::from(
        "# Comparison\n\nMean ± std over seeds [95% confidence interval of the mean] (accuracies and forgetting in %); \
         `avg acc` and `forgetting` in each benchmark's own setting (class- or domain-incremental). \
         Where the grid names a baseline, `(n.s.)` marks a method whose paired difference from it \
         (same seeds) is not significant at 5%.\n\n",
    );
    out.push_str(&format!("| {} |\n", header.join(" | ")));
    out.push_str(&format!("|{}\n", " --- |".repeat(header.len())));
    for method in &methods {
        let mut line = vec![method.clone()];
        for (b, column) in &columns {
            let bench = &benchmarks[*b];
            let metric = match column {
                ComparisonColumn::Metric(metric) => metric,
                ComparisonColumn::Adapted(i) => {
                    line.push(adapted_cell(bench, &bench.adaptation[*i].1, method));
                    continue;
                }
            };
            let hit = bench.summary.rows.iter().find(|r| {
                r.experiment == bench.experiment
                    && r.is_scalar()
                    && &r.metric == metric
                    && &method_label(r) == method
            });
            let mut text = hit.map(cell).unwrap_or_else(|| "–".into());
            if let (Some(r), Some(paired)) = (hit, &bench.paired) {
                if r.method == paired.baseline {
                    text.push_str(" (baseline)");
                } else if let Some(p) = paired
                    .by
                    .get(&((r.method.clone(), r.axes.clone()), metric.clone()))
                    && !p.significant()
                {
                    text.push_str(" (n.s.)");
                }
            }
            line.push(text);
        }
        out.push_str(&format!("| {} |\n", line.join(" | ")));
    }
    out
}

/// A method's adapted accuracy over seeds, marked as the scalar columns
/// are: `(baseline)`, or `(n.s.)` where its paired difference from the
/// baseline (same axes, same seeds) is not significant.
fn adapted_cell(bench: &Benchmark, groups: &SeedValues, method: &str) -> String {
    let Some((group, seeds)) = groups
        .iter()
        .find(|(g, _)| group_text(&g.0, &g.1) == method)
    else {
        return "–".into();
    };
    let mut text = seeds_cell(seeds);
    let Some(baseline) = &bench.baseline else {
        return text;
    };
    if &group.0 == baseline {
        text.push_str(" (baseline)");
    } else if let Some(base) = groups.get(&(baseline.clone(), group.1.clone())) {
        let diffs = crate::stats::paired_diffs(seeds, base);
        if !diffs.is_empty() && !Paired::of(&diffs).significant() {
            text.push_str(" (n.s.)");
        }
    }
    text
}

fn method_label(r: &SummaryRow) -> String {
    group_text(&r.method, &r.axes)
}

/// `method (axis values)`, or the method alone without extra axes.
fn group_text(method: &str, axes: &[String]) -> String {
    let axes: Vec<&str> = axes
        .iter()
        .filter(|a| !a.is_empty())
        .map(String::as_str)
        .collect();
    if axes.is_empty() {
        method.to_string()
    } else {
        format!("{method} ({})", axes.join(", "))
    }
}

#[cfg(test)]
mod tests {
    use super::spread_cell;

    #[test]
    fn small_means_keep_two_significant_digits_and_large_ones_two_decimals() {
        // A parameter change of 0.0034 after 8 epochs printed as 0.00.
        assert_eq!(
            spread_cell(0.0034, 0.0012, 0.0005, 5),
            "0.0034 ± 0.0012 [0.0029, 0.0039]"
        );
        assert_eq!(spread_cell(0.0034, f64::NAN, f64::NAN, 1), "0.0034");
        assert_eq!(
            spread_cell(0.05, 0.01, 0.02, 3),
            "0.050 ± 0.010 [0.030, 0.070]"
        );
        assert_eq!(
            spread_cell(-0.0021, 0.0, 0.0, 2),
            "-0.0021 ± 0.0000 [-0.0021, -0.0021]"
        );
        assert_eq!(
            spread_cell(73.456, 1.2, 1.5, 3),
            "73.46 ± 1.20 [71.96, 74.96]"
        );
        assert_eq!(spread_cell(0.0, 0.0, 0.0, 2), "0.00 ± 0.00 [0.00, 0.00]");
        assert_eq!(spread_cell(1e-12, 0.0, 0.0, 1), "0.00000000");
        assert_eq!(spread_cell(f64::NAN, 0.0, 0.0, 3), "–");
    }
}
