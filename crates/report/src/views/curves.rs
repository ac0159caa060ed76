//! Training curves of every experiment, whatever its protocol: the mean
//! epoch loss of every stage in the order the stages ran, one line per
//! method group, with a 95 % confidence band over seeds.

use reusebench_results::{StoredRow, names};

use super::group_of;
use crate::error::ReportError;
use crate::plot::{Axes, Figures, Point, Series, render_lines, slug};

pub fn draw_curves(
    rows: &[&StoredRow],
    experiment: &str,
    axis_columns: &[String],
    figures: &mut Figures,
) -> Result<(), ReportError> {
    use std::collections::BTreeMap;
    // Per group and seed, the loss of each epoch in running order (rows
    // are stored in the order the stages ran).
    let mut runs: BTreeMap<String, BTreeMap<(u64, String), Vec<f64>>> = BTreeMap::new();
    for r in rows.iter().filter(|r| r.metric == names::CURVE_LOSS) {
        runs.entry(group_of(r, axis_columns))
            .or_default()
            .entry((r.seed, r.cell.clone()))
            .or_default()
            .push(r.value);
    }
    if runs.is_empty() {
        return Ok(());
    }
    let series: Vec<Series> = runs
        .into_iter()
        .map(|(name, seeds)| {
            let longest = seeds.values().map(Vec::len).max().unwrap_or(0);
            let points = (0..longest)
                .map(|i| {
                    let at: Vec<f64> = seeds.values().filter_map(|v| v.get(i).copied()).collect();
                    Point::of(i as f64, &at)
                })
                .collect();
            Series { name, points }
        })
        .collect();
    let title = format!("{experiment}: training loss per epoch (every stage in order)");
    let x_label = "epoch, all stages in order";
    let axes = Axes::fitted(title, x_label, "mean training loss", &series);
    render_lines(
        figures,
        &format!("curves-{}", slug(experiment)),
        (860, 440),
        &axes,
        &series,
    )
}
