//! The performative view: accuracy and loss against round for every method
//! (mean with a 95 % confidence band over seeds), one figure each per temperature τ;
//! and a table of where each method sits between `no-adapt` and
//! `oracle-prior` (the share of the gap it closes, from the mean accuracy
//! over rounds). The table of averages over rounds is the generic scalar
//! table (`mean_round_acc`, `mean_round_ce`, `mean_round_kl_prior`).

use std::collections::BTreeMap;

use reusebench_results::{StoredRow, names};

use super::{
    Drawn, Experiment, View, draw_lines, scalar_rows, setting_line, table_header, values_by,
};
use crate::plot::{Figures, slug};

pub struct PerformativeView;

/// The grid axis that holds τ, when the grid sweeps it.
const TEMPERATURE: &str = "temperature";

impl View for PerformativeView {
    fn markdown(&self, e: &Experiment) -> String {
        let (exp, summary) = (e.name, e.summary);
        // Mean accuracy over rounds by (other axes) and method.
        let mut by_setting: BTreeMap<Vec<String>, BTreeMap<String, f64>> = BTreeMap::new();
        for r in scalar_rows(summary, exp).filter(|r| r.metric == names::MEAN_ROUND_ACC) {
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
            md.push_str(&setting_line(&summary.axis_columns, axes));
            md.push_str(&table_header(["method", "mean round acc", "gap closed"]));
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

    fn figures(&self, e: &Experiment, figures: &mut Figures) -> Drawn {
        let (exp, rows, axis_columns) = (e.name, e.rows, &e.summary.axis_columns[..]);
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
                let name = format!("rounds-{file}-{}{file_tau}", slug(exp));
                let title = format!("{exp}: {what} per round{suffix}");
                let labels = [title.as_str(), "round", what];
                draw_lines(figures, &name, (900, 440), &by_round, |&r| r as f64, labels)?;
            }
        }
        Ok(())
    }
}
