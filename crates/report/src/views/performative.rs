//! The performative view: accuracy and loss against round for every method
//! (mean with a ± std band over seeds), one figure each per temperature τ;
//! and a table of where each method sits between `no-adapt` and
//! `oracle-prior` (the share of the gap it closes, from the mean accuracy
//! over rounds). The table of averages over rounds is the generic scalar
//! table (`mean_round_acc`, `mean_round_ce`, `mean_round_kl_prior`).

use std::collections::BTreeMap;

use reusebench_results::{StoredRow, names};

use super::{View, series_of, values_by};
use crate::aggregate::Summary;
use crate::error::ReportError;
use crate::plot::{Axes, Figures, render_lines, slug};

pub struct PerformativeView;

/// The grid axis that holds τ, when the grid sweeps it.
const TEMPERATURE: &str = "temperature";

impl View for PerformativeView {
    fn protocol(&self) -> &'static str {
        "performative"
    }

    fn shows_coordinates(&self) -> bool {
        true
    }

    fn markdown(&self, summary: &Summary, _rows: &[&StoredRow], exp: &str) -> String {
        // Mean accuracy over rounds by (other axes) and method.
        let mut by_setting: BTreeMap<Vec<String>, BTreeMap<String, f64>> = BTreeMap::new();
        for r in summary
            .rows
            .iter()
            .filter(|r| r.experiment == exp && r.metric == names::MEAN_ROUND_ACC && r.is_scalar())
        {
            by_setting
                .entry(r.axes.clone())
                .or_default()
                .insert(r.method.clone(), r.mean);
        }
        let mut md = String::new();
        for (axes, methods) in &by_setting {
            let (Some(&none), Some(&oracle)) =
                (methods.get("no-adapt"), methods.get("oracle-prior"))
            else {
                continue;
            };
            if md.is_empty() {
                md.push_str(
                    "\n### Between no-adapt and oracle-prior\n\nMean accuracy over rounds (mean over seeds); `gap closed` = (method − no-adapt) / (oracle-prior − no-adapt).\n",
                );
            }
            let setting: Vec<String> = summary
                .axis_columns
                .iter()
                .zip(axes)
                .map(|(a, v)| format!("{a}={v}"))
                .collect();
            if !setting.is_empty() {
                md.push_str(&format!("\n{}\n", setting.join(", ")));
            }
            md.push_str("\n| method | mean round acc | gap closed |\n| --- | --- | --- |\n");
            for (method, &acc) in methods {
                let gap = if (oracle - none).abs() > 1e-9 {
                    format!("{:.2}", (acc - none) / (oracle - none))
                } else {
                    "–".into()
                };
                md.push_str(&format!("| {method} | {acc:.2} | {gap} |\n"));
            }
        }
        md
    }

    fn figures(
        &self,
        rows: &[&StoredRow],
        exp: &str,
        axis_columns: &[String],
        figures: &mut Figures,
    ) -> Result<(), ReportError> {
        let others: Vec<String> = axis_columns
            .iter()
            .filter(|a| *a != TEMPERATURE)
            .cloned()
            .collect();
        let mut by_tau: BTreeMap<String, Vec<&StoredRow>> = BTreeMap::new();
        for r in rows {
            by_tau.entry(r.axis(TEMPERATURE)).or_default().push(r);
        }
        for (tau, rows) in by_tau {
            let suffix = if tau.is_empty() {
                String::new()
            } else {
                format!(" (τ = {tau})")
            };
            let file_tau = if tau.is_empty() {
                String::new()
            } else {
                format!("-tau-{}", slug(&tau))
            };
            for (metric, what, file) in [
                (names::ROUND_ACC, "accuracy (%)", "acc"),
                (names::ROUND_CE, "cross-entropy (nats)", "loss"),
            ] {
                let by_round = values_by(&rows, metric, &others, |r| r.coords.index(names::ROUND));
                if by_round.is_empty() {
                    continue;
                }
                let series = series_of(&by_round, |&round| round as f64);
                let axes = Axes {
                    title: format!("{exp}: {what} per round{suffix}"),
                    x_label: "round".into(),
                    y_label: what.into(),
                    x: Axes::fit_x(&series),
                    y: Axes::fit_y(&series),
                    integer_x: true,
                };
                render_lines(
                    figures,
                    &format!("rounds-{file}-{}{file_tau}", slug(exp)),
                    (900, 440),
                    &axes,
                    &series,
                )?;
            }
        }
        Ok(())
    }
}
