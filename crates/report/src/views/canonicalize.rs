//! The canonicalize view: the paper's table (methods × upright and
//! C8-averaged accuracy, with the invariance error and the share of turned
//! images mapped upright), and accuracy per rotation angle for every
//! method (mean with a 95 % confidence band over seeds).

use std::collections::BTreeMap;

use reusebench_results::names;

use super::{
    Drawn, Experiment, View, draw_lines, scalar_rows, setting_line, table_header, values_by,
};
use crate::plot::{Figures, slug};

pub struct CanonicalizeView;

/// A method with its place in [`ORDER`].
type Ranked = (usize, String);

/// The paper's order; other methods follow by name.
const ORDER: [&str; 4] = ["vanilla", "aug", "canon", "canon-prior"];

impl View for CanonicalizeView {
    fn markdown(&self, e: &Experiment) -> String {
        let (exp, summary) = (e.name, e.summary);
        let columns = [
            (names::ACC_UPRIGHT, "upright"),
            (names::ACC_C8_AVG, "C8-averaged"),
            (names::INVARIANCE_ERROR, "invariance error"),
            (names::UPRIGHT_FRACTION, "mapped upright"),
        ];
        // (other axes, (rank, method)) -> metric -> "mean ± std".
        let mut table: BTreeMap<(Vec<String>, Ranked), BTreeMap<&str, String>> = BTreeMap::new();
        for r in scalar_rows(summary, exp) {
            if let Some((metric, _)) = columns.iter().find(|(m, _)| *m == r.metric) {
                let rank = ORDER
                    .iter()
                    .position(|m| *m == r.method)
                    .unwrap_or(ORDER.len());
                table
                    .entry((r.axes.clone(), (rank, r.method.clone())))
                    .or_default()
                    .insert(metric, format!("{:.2} ± {:.2}", r.mean, r.std));
            }
        }
        if table.is_empty() {
            return String::new();
        }
        let mut md = String::from(
            "\n### Upright and C8-averaged accuracy\n\nTest accuracy (%) as it is and averaged over the eight turns by 45°; the share of images whose prediction changes across the cell's C_N turns; the share of C_N-turned images the canonicalizer maps back upright (mean ± std over seeds).\n",
        );
        let mut last_axes: Option<&Vec<String>> = None;
        for ((axes, (_, method)), cells) in &table {
            if last_axes != Some(axes) {
                md.push_str(&setting_line(&summary.axis_columns, axes));
                let titles = columns.iter().map(|(_, title)| *title);
                md.push_str(&table_header(std::iter::once("method").chain(titles)));
                last_axes = Some(axes);
            }
            md.push_str(&format!("| {method} |"));
            for (metric, _) in &columns {
                md.push_str(&format!(
                    " {} |",
                    cells.get(metric).map_or("–", String::as_str)
                ));
            }
            md.push('\n');
        }
        md
    }

    fn figures(&self, e: &Experiment, figures: &mut Figures) -> Drawn {
        let (exp, rows, axis_columns) = (e.name, e.rows, &e.summary.axis_columns[..]);
        let by_angle = values_by(rows, names::ACC_ROTATED, axis_columns, |r| {
            r.coords.index(names::ANGLE)
        });
        let name = format!("canonicalize-acc-per-angle-{}", slug(exp));
        let title = format!("{exp}: accuracy per rotation of the test set");
        let labels = [
            title.as_str(),
            "rotation (degrees, counterclockwise)",
            "accuracy (%)",
        ];
        draw_lines(figures, &name, (900, 440), &by_angle, |&a| a as f64, labels)
    }
}
