//! The resque view: how well RESQUE (one forward pass) predicts what
//! retraining cost. Every done cell is a point (each shift level and seed);
//! Pearson's r and Spearman's ρ between RESQUE and each cost, with 95%
//! percentile-bootstrap intervals, per shift family and over all
//! corruptions; scatter plots of RESQUE against epochs and against energy
//! with the least-squares line. Distribution shifts (RESQUE_dist) and task
//! shifts (RESQUE_task) are on different scales and never pooled.

use std::collections::BTreeMap;

use reusebench_results::{StoredRow, names};

use super::{Drawn, Experiment, View};
use crate::plot::{Axes, Figures, Scatter, render_scatter, slug};
use crate::stats::{bootstrap_ci, fit_line, pearson, spearman};

pub struct ResqueView;

/// The costs RESQUE is set against, with how they read in a table.
const COSTS: [(&str, &str); 8] = [
    (names::RETRAIN_EPOCHS, "epochs to target"),
    (names::MEAN_GRAD_NORM, "gradient norm"),
    (names::GRAD_NORM_SUM, "gradient norm, summed over epochs"),
    (names::PARAM_CHANGE, "parameter change"),
    (names::PARAM_CHANGE_RELATIVE, "parameter change, relative"),
    (names::RETRAIN_SECONDS, "wall time (s)"),
    (names::ENERGY_JOULES, "energy (J)"),
    (names::CARBON_GRAMS, "carbon (g)"),
];

const RESAMPLES: usize = 2000;

/// One cell's numbers: its family, which RESQUE, its value, its scalars.
struct Cell {
    family: String,
    /// The `shift` axis as the grid names the cell (`family=… drop=0.05`).
    shift: String,
    task: bool,
    resque: f64,
    scalars: BTreeMap<String, f64>,
}

impl Cell {
    /// At the target before any training: its cost is not measured (0
    /// epochs says only "at most 0"), so it is reported apart and left out
    /// of the correlations instead of counting as a zero.
    fn censored(&self) -> bool {
        self.scalars.get(names::RETRAIN_EPOCHS) == Some(&0.0)
    }
    /// Stopped by the epoch cap without reaching the target: its cost is a
    /// lower bound. Counted, kept in the correlations.
    fn capped(&self) -> bool {
        self.scalars.get(names::TARGET_REACHED) == Some(&0.0)
    }
}

fn cells(rows: &[&StoredRow]) -> Vec<Cell> {
    let mut by_cell: BTreeMap<&str, Vec<&StoredRow>> = BTreeMap::new();
    for r in rows.iter().filter(|r| r.is_scalar()) {
        by_cell.entry(r.cell.as_str()).or_default().push(r);
    }
    by_cell
        .into_values()
        .filter_map(|rows| {
            let scalars: BTreeMap<String, f64> =
                rows.iter().map(|r| (r.metric.clone(), r.value)).collect();
            let (task, resque) = match (
                scalars.get(names::RESQUE_DIST),
                scalars.get(names::RESQUE_TASK),
            ) {
                (Some(&v), _) => (false, v),
                (None, Some(&v)) => (true, v),
                _ => return None,
            };
            let shift = rows[0]
                .axes
                .get("shift")
                .map(|v| v.as_str().map_or_else(|| v.to_string(), String::from))
                .unwrap_or_default();
            Some(Cell {
                family: rows[0].method.clone(),
                shift,
                task,
                resque,
                scalars,
            })
        })
        .collect()
}

/// The groups of points a table and the plots show: each family, then
/// all corruption families together (when there are several).
fn scopes(cells: &[Cell]) -> Vec<(String, Vec<&Cell>)> {
    let mut families: BTreeMap<String, Vec<&Cell>> = BTreeMap::new();
    for c in cells {
        families.entry(c.family.clone()).or_default().push(c);
    }
    let corruptions: Vec<&Cell> = cells.iter().filter(|c| !c.task).collect();
    let n_corruption_families = families
        .values()
        .filter(|v| v.first().is_some_and(|c| !c.task))
        .count();
    let mut out: Vec<(String, Vec<&Cell>)> = families.into_iter().collect();
    if n_corruption_families > 1 {
        out.push(("all corruptions".into(), corruptions));
    }
    out
}

fn interval((v, lo, hi): (f64, f64, f64)) -> String {
    if v.is_nan() {
        "–".into()
    } else if lo.is_nan() {
        format!("{v:.2}")
    } else {
        format!("{v:.2} [{lo:.2}, {hi:.2}]")
    }
}

/// The correlations of RESQUE with each cost, per family and over all
/// corruptions, censored cells apart.
fn correlation_table(cells: &[Cell]) -> String {
    if cells.is_empty() {
        return String::new();
    }
    let rapl = cells
        .iter()
        .filter(|c| c.scalars.get(names::ENERGY_FROM_RAPL) == Some(&1.0))
        .count();
    let mut md = format!(
        "\n### RESQUE against the cost of retraining\n\nEvery cell is a point (each level and seed); groups of fewer than 3 points are left out. Cells already at the target before any training (0 epochs) are censored: counted apart and left out of r and ρ, not taken as zero cost. Cells the epoch cap stopped short of the target are counted (their cost is a lower bound) and kept. Pearson's r and Spearman's ρ with 95% percentile-bootstrap intervals ({RESAMPLES} resamples). Energy from RAPL in {rapl} of {} cells, from the CPU power model in the others.\n\n| shifts | cost | n | censored (0 epochs) | cap hit | Pearson r [95% CI] | Spearman ρ [95% CI] |\n| --- | --- | --- | --- | --- | --- | --- |\n",
        cells.len()
    );
    for (scope, points) in scopes(cells) {
        let censored = points.iter().filter(|c| c.censored()).count();
        let capped = points.iter().filter(|c| c.capped()).count();
        for (k, (metric, label)) in COSTS.iter().enumerate() {
            let (x, y): (Vec<f64>, Vec<f64>) = points
                .iter()
                .filter(|c| !c.censored())
                .filter_map(|c| c.scalars.get(*metric).map(|&v| (c.resque, v)))
                .unzip();
            // Fewer than three points say nothing about a correlation.
            if x.len() < 3 {
                continue;
            }
            let seed = 17 + k as u64;
            md.push_str(&format!(
                "| {scope} | {label} | {} | {censored} | {capped} | {} | {} |\n",
                x.len(),
                interval(bootstrap_ci(&x, &y, pearson, RESAMPLES, seed)),
                interval(bootstrap_ci(&x, &y, spearman, RESAMPLES, seed)),
            ));
        }
    }
    md
}

/// Calibrated levels (`drop:`): per family and level, over seeds, the
/// parameter calibration chose, the share of accuracy it removed on the
/// calibration images and on the shifted test set, and what retraining
/// took. Nothing when no cell was calibrated.
fn levels_table(cells: &[Cell]) -> String {
    let mut levels: BTreeMap<(String, String), Vec<&Cell>> = BTreeMap::new();
    for c in cells
        .iter()
        .filter(|c| c.scalars.contains_key(names::CALIBRATION_DROP))
    {
        levels
            .entry((c.family.clone(), c.shift.clone()))
            .or_default()
            .push(c);
    }
    if levels.is_empty() {
        return String::new();
    }
    let mut rows: Vec<(String, f64, String)> = levels
        .into_iter()
        .map(|((family, shift), cs)| {
            let mean = |f: &dyn Fn(&Cell) -> Option<f64>| {
                let v: Vec<f64> = cs.iter().filter_map(|c| f(c)).collect();
                v.iter().sum::<f64>() / v.len().max(1) as f64
            };
            let of = |m: &'static str| mean(&|c: &Cell| c.scalars.get(m).copied());
            let calibrated = of(names::CALIBRATION_DROP);
            let test_drop = mean(&|c: &Cell| {
                let before = c.scalars.get(names::ACC_BEFORE_RETRAIN)?;
                let clean = c.scalars.get(names::CLEAN_ACC)?;
                (*clean > 0.0).then(|| 1.0 - before / clean)
            });
            let level: Vec<&str> = shift
                .split_whitespace()
                .filter(|p| !p.starts_with("family="))
                .collect();
            let reached = cs.iter().filter(|c| !c.capped()).count();
            let line = format!(
                "| {family} | {} | {:.4} | {calibrated:.3} | {test_drop:.3} | {:.1} | {reached}/{} | {:.4} |\n",
                level.join(" "),
                of(names::SHIFT_SEVERITY),
                of(names::RETRAIN_EPOCHS),
                cs.len(),
                mean(&|c: &Cell| Some(c.resque)),
            );
            (family, calibrated, line)
        })
        .collect();
    rows.sort_by(|a, b| a.0.cmp(&b.0).then(a.1.total_cmp(&b.1)));
    let mut md = String::from(
        "\n### Calibrated levels\n\nPer family and level, means over seeds: the parameter calibration chose, the share of the pretrained classifier's accuracy it removed on the calibration images (part 2 of the split, never trained on) and on the shifted test set, the retraining epochs, how many cells reached the target, and RESQUE_dist.\n\n| family | level | parameter | drop (calibration) | drop (test) | epochs | reached | RESQUE_dist |\n| --- | --- | --- | --- | --- | --- | --- | --- |\n",
    );
    for (_, _, line) in rows {
        md.push_str(&line);
    }
    md
}

impl View for ResqueView {
    fn markdown(&self, e: &Experiment) -> String {
        let cells = cells(e.rows);
        correlation_table(&cells) + &levels_table(&cells)
    }

    fn figures(&self, e: &Experiment, figures: &mut Figures) -> Drawn {
        let (exp, rows) = (e.name, e.rows);
        let cells = cells(rows);
        for (task, kind, x_label) in [
            (false, "dist", "RESQUE_dist (mean angle / π)"),
            (true, "task", "RESQUE_task (1 − ARI)"),
        ] {
            let of_kind: Vec<&Cell> = cells.iter().filter(|c| c.task == task).collect();
            if of_kind.is_empty() {
                continue;
            }
            for (metric, label, file) in [
                (names::RETRAIN_EPOCHS, "epochs to target", "epochs"),
                (names::ENERGY_JOULES, "energy (J)", "energy"),
            ] {
                let mut groups: BTreeMap<String, Vec<(f64, f64)>> = BTreeMap::new();
                // Censored cells (0 epochs) stay out of the plot and its line.
                for c in of_kind.iter().filter(|c| !c.censored()) {
                    if let Some(&v) = c.scalars.get(metric) {
                        groups
                            .entry(c.family.clone())
                            .or_default()
                            .push((c.resque, v));
                    }
                }
                let all: Vec<(f64, f64)> = groups.values().flatten().copied().collect();
                if all.is_empty() {
                    continue;
                }
                let (xs, ys): (Vec<f64>, Vec<f64>) = all.iter().copied().unzip();
                let range = |v: &[f64]| {
                    let (lo, hi) = v
                        .iter()
                        .fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), &x| {
                            (a.min(x), b.max(x))
                        });
                    let pad = ((hi - lo) * 0.08).max(1e-6);
                    (lo - pad)..(hi + pad)
                };
                let axes = Axes {
                    title: format!("{exp}: RESQUE against {label}"),
                    x_label: x_label.into(),
                    y_label: label.into(),
                    x: range(&xs),
                    y: range(&ys),
                    integer_x: false,
                };
                let groups: Vec<Scatter> = groups.into_iter().collect();
                let line = (xs.len() >= 2).then(|| fit_line(&xs, &ys));
                render_scatter(
                    figures,
                    &format!("resque-{kind}-vs-{file}-{}", slug(exp)),
                    &axes,
                    &groups,
                    line,
                )?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cell(name: &str, resque: f64, epochs: f64, reached: f64) -> Vec<StoredRow> {
        [
            (names::RESQUE_DIST, resque),
            (names::RETRAIN_EPOCHS, epochs),
            (names::TARGET_REACHED, reached),
        ]
        .iter()
        .map(|&(metric, value)| StoredRow {
            cell: name.into(),
            experiment: "resque".into(),
            protocol: "resque".into(),
            method: "gaussian-noise".into(),
            seed: 0,
            axes: Default::default(),
            split: "test".into(),
            metric: metric.into(),
            value,
            coords: Default::default(),
        })
        .collect()
    }

    /// A cell at the target before training (0 epochs) is counted apart
    /// and left out of r; taken as a zero it would drag r from +1 to
    /// negative here. A capped cell is counted and kept.
    #[test]
    fn censored_cells_are_counted_apart_and_left_out_of_r() {
        let rows: Vec<StoredRow> = [
            cell("a", 0.1, 1.0, 1.0),
            cell("b", 0.2, 2.0, 1.0),
            cell("c", 0.3, 3.0, 1.0),
            cell("d", 0.4, 4.0, 0.0),
            cell("e", 0.9, 0.0, 1.0),
        ]
        .concat();
        let refs: Vec<&StoredRow> = rows.iter().collect();
        let md = correlation_table(&cells(&refs));
        let line = md
            .lines()
            .find(|l| l.starts_with("| gaussian-noise | epochs to target |"))
            .unwrap_or_else(|| panic!("{md}"));
        // n = 4 used, 1 censored, 1 capped; r = 1 on the four.
        assert!(
            line.starts_with("| gaussian-noise | epochs to target | 4 | 1 | 1 | 1.00"),
            "{line}"
        );
    }

    /// The calibrated levels' table: one line per level, seeds averaged,
    /// sorted by the drop calibration reached; the drop on test is
    /// 1 − acc_before / clean.
    #[test]
    fn calibrated_levels_are_tabled_per_level_over_seeds() {
        let level = |name: &str, drop: &str, seed: u64, severity: f64, reached: f64| {
            [
                (names::RESQUE_DIST, 0.1 * severity),
                (names::SHIFT_SEVERITY, severity),
                (names::CALIBRATION_DROP, severity / 2.0),
                (names::CLEAN_ACC, 60.0),
                (names::ACC_BEFORE_RETRAIN, 45.0),
                (names::RETRAIN_EPOCHS, 2.0 + seed as f64),
                (names::TARGET_REACHED, reached),
            ]
            .iter()
            .map(|&(metric, value)| {
                let mut axes = serde_json::Map::new();
                axes.insert(
                    "shift".into(),
                    format!("family=contrast drop={drop}").into(),
                );
                StoredRow {
                    cell: name.into(),
                    experiment: "resque".into(),
                    protocol: "resque".into(),
                    method: "contrast".into(),
                    seed,
                    axes,
                    split: "test".into(),
                    metric: metric.into(),
                    value,
                    coords: Default::default(),
                }
            })
            .collect::<Vec<_>>()
        };
        let rows: Vec<StoredRow> = [
            level("a", "0.6", 0, 0.8, 0.0),
            level("b", "0.6", 1, 0.6, 1.0),
            level("c", "0.1", 0, 0.2, 1.0),
        ]
        .concat();
        let refs: Vec<&StoredRow> = rows.iter().collect();
        let md = levels_table(&cells(&refs));
        let lines: Vec<&str> = md.lines().filter(|l| l.starts_with("| contrast")).collect();
        assert_eq!(
            lines,
            [
                "| contrast | drop=0.1 | 0.2000 | 0.100 | 0.250 | 2.0 | 1/1 | 0.0200 |",
                "| contrast | drop=0.6 | 0.7000 | 0.350 | 0.250 | 2.5 | 1/2 | 0.0700 |",
            ],
            "{md}"
        );
        assert!(levels_table(&cells(&refs[..0])).is_empty());
    }
}
