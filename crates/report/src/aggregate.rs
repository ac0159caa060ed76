//! Mean ± std over seeds with polars, and the Markdown/CSV/Parquet writers.

use std::path::Path;

use polars::prelude::*;

use crate::error::ReportError;
use crate::rows::FailedCell;

/// Metrics shown first, in this order; others follow alphabetically.
const PREFERRED: [&str; 11] = [
    "avg_acc_class_il",
    "avg_acc_task_il",
    "forgetting_class_il",
    "forgetting_task_il",
    "bwt_class_il",
    "bwt_task_il",
    "knn_acc",
    "knn_forgetting",
    "test_acc",
    "train_loss",
    "adaptation_acc",
];

#[derive(Debug, Clone)]
pub struct SummaryRow {
    pub experiment: String,
    pub protocol: String,
    pub method: String,
    /// Values of the extra axis columns, in `Summary::axis_columns` order.
    pub axes: Vec<String>,
    pub metric: String,
    pub mean: f64,
    pub std: f64,
    pub n: u32,
}

#[derive(Debug, Clone)]
pub struct Summary {
    pub axis_columns: Vec<String>,
    pub rows: Vec<SummaryRow>,
    pub frame: DataFrame,
}

/// Aggregates the scalar metrics (rows without a task index) over seeds.
pub fn summarize(frame: &DataFrame, axis_columns: &[String]) -> Result<Summary, ReportError> {
    let mut keys: Vec<String> = vec!["experiment".into(), "protocol".into(), "method".into()];
    keys.extend(axis_columns.iter().cloned());
    keys.push("metric".into());
    let key_exprs: Vec<Expr> = keys.iter().map(|k| col(k.as_str())).collect();
    let agg = frame
        .clone()
        .lazy()
        .filter(col("after_task").is_null())
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
            SortMultipleOptions::default(),
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
    let axes: Vec<Vec<String>> = axis_columns
        .iter()
        .map(|a| text(a))
        .collect::<Result<_, _>>()?;
    let (mean, std, n) = (num("mean")?, num("std")?, num("n")?);
    let rows = (0..agg.height())
        .map(|i| SummaryRow {
            experiment: experiment[i].clone(),
            protocol: protocol[i].clone(),
            method: method[i].clone(),
            axes: axes.iter().map(|a| a[i].clone()).collect(),
            metric: metric[i].clone(),
            mean: mean[i],
            std: std[i],
            n: n[i] as u32,
        })
        .collect();
    Ok(Summary {
        axis_columns: axis_columns.to_vec(),
        rows,
        frame: agg,
    })
}

pub fn write_parquet(frame: &mut DataFrame, path: &Path) -> Result<(), ReportError> {
    let tmp = path.with_extension("parquet.tmp");
    let file = std::fs::File::create(&tmp).map_err(|e| ReportError::io(&tmp, e))?;
    ParquetWriter::new(file).finish(frame)?;
    std::fs::rename(&tmp, path).map_err(|e| ReportError::io(path, e))
}

pub fn write_csv(summary: &Summary, path: &Path) -> Result<(), ReportError> {
    let tmp = path.with_extension("csv.tmp");
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

fn cell(mean: f64, std: f64, n: u32) -> String {
    if mean.is_nan() {
        return "–".into();
    }
    if n < 2 || std.is_nan() {
        format!("{mean:.2}")
    } else {
        format!("{mean:.2} ± {std:.2}")
    }
}

/// One table per experiment: a row per method (and extra axis values), a
/// column per metric, `mean ± std` over seeds and the number of seeds.
pub fn markdown(summary: &Summary, failed: &[FailedCell], done: usize, stale: usize) -> String {
    let mut out = String::from("# Results\n\n");
    out.push_str(&format!(
        "{done} cell(s) done, {} failed. Values are mean ± std over seeds (n = seeds); accuracies in %.\n",
        failed.len()
    ));
    if stale > 0 {
        out.push_str(&format!(
            "\n{stale} cell folder(s) under cells/ are not part of the current grid (left by an earlier version of it) and are not included.\n"
        ));
    }
    let mut experiments: Vec<&str> = summary.rows.iter().map(|r| r.experiment.as_str()).collect();
    experiments.dedup();
    for exp in experiments {
        let rows: Vec<&SummaryRow> = summary
            .rows
            .iter()
            .filter(|r| r.experiment == exp)
            .collect();
        let mut metrics: Vec<String> = rows.iter().map(|r| r.metric.clone()).collect();
        metrics.sort();
        metrics.dedup();
        metric_order(&mut metrics);
        // Axis columns that vary (or are set) inside this experiment.
        let axis_idx: Vec<usize> = (0..summary.axis_columns.len())
            .filter(|&a| rows.iter().any(|r| !r.axes[a].is_empty()))
            .collect();
        let mut groups: Vec<(String, Vec<String>)> = Vec::new();
        for r in &rows {
            let key = (
                r.method.clone(),
                axis_idx.iter().map(|&a| r.axes[a].clone()).collect(),
            );
            if !groups.contains(&key) {
                groups.push(key);
            }
        }
        out.push_str(&format!("\n## {exp} ({})\n\n", rows[0].protocol));
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
                    &r.method == method
                        && axis_idx
                            .iter()
                            .map(|&a| r.axes[a].clone())
                            .collect::<Vec<_>>()
                            == *axes
                        && &r.metric == m
                });
                match hit {
                    Some(r) => {
                        n = n.max(r.n);
                        line.push(cell(r.mean, r.std, r.n));
                    }
                    None => line.push("–".into()),
                }
            }
            line.push(n.to_string());
            out.push_str(&format!("| {} |\n", line.join(" | ")));
        }
    }
    if !failed.is_empty() {
        out.push_str("\n## Failed cells\n\n| cell | experiment | method | seed | reason |\n| --- | --- | --- | --- | --- |\n");
        for f in failed {
            let reason = f.reason.replace('|', "\\|").replace('\n', " ");
            out.push_str(&format!(
                "| {} | {} | {} | {} | {} |\n",
                f.cell, f.experiment, f.method, f.seed, reason
            ));
        }
    }
    out
}

/// One benchmark's column group in the comparison table.
pub struct Benchmark<'a> {
    pub label: String,
    pub summary: &'a Summary,
    pub experiment: String,
}

/// The table continual-learning papers print: methods as rows; for every
/// benchmark, average accuracy, forgetting, kNN accuracy and adaptation
/// accuracy, `mean ± std` over seeds. The setting (class- or
/// domain-incremental) is the one each benchmark's rows carry.
pub fn comparison_markdown(benchmarks: &[Benchmark]) -> String {
    let mut methods: Vec<String> = Vec::new();
    let mut header = vec!["method".to_string()];
    let mut columns: Vec<(usize, String)> = Vec::new();
    for (b, bench) in benchmarks.iter().enumerate() {
        let rows: Vec<&SummaryRow> = bench
            .summary
            .rows
            .iter()
            .filter(|r| r.experiment == bench.experiment)
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
                columns.push((b, metric));
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
        "# Comparison\n\nMean ± std over seeds (accuracies and forgetting in %); \
         `avg acc` and `forgetting` in each benchmark's own setting (class- or domain-incremental).\n\n",
    );
    out.push_str(&format!("| {} |\n", header.join(" | ")));
    out.push_str(&format!("|{}\n", " --- |".repeat(header.len())));
    for method in &methods {
        let mut line = vec![method.clone()];
        for (b, metric) in &columns {
            let bench = &benchmarks[*b];
            let hit = bench.summary.rows.iter().find(|r| {
                r.experiment == bench.experiment
                    && &r.metric == metric
                    && &method_label(r) == method
            });
            line.push(
                hit.map(|r| cell(r.mean, r.std, r.n))
                    .unwrap_or_else(|| "–".into()),
            );
        }
        out.push_str(&format!("| {} |\n", line.join(" | ")));
    }
    out
}

fn method_label(r: &SummaryRow) -> String {
    let axes: Vec<&str> = r
        .axes
        .iter()
        .filter(|a| !a.is_empty())
        .map(String::as_str)
        .collect();
    if axes.is_empty() {
        r.method.clone()
    } else {
        format!("{} ({})", r.method, axes.join(", "))
    }
}
