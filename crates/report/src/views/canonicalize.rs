//! The canonicalize view: the paper's table (methods × upright and
//! C8-averaged accuracy, with the invariance error and the share of turned
//! images mapped upright), and accuracy per rotation angle for every
//! method (mean with a ± std band over seeds).

use std::collections::BTreeMap;

use reusebench_results::{StoredRow, names};

use super::{View, series_of, values_by};
use crate::aggregate::Summary;
use crate::error::ReportError;
use crate::plot::{Axes, Figures, render_lines, slug};

pub struct CanonicalizeView;

/// A method with its place in [`ORDER`].
type Ranked = (usize, String);

/// The paper's order; other methods follow by name.
const ORDER: [&str; 4] = ["vanilla", "aug", "canon", "canon-prior"];

impl View for CanonicalizeView {
    fn protocol(&self) -> &'static str {
        "canonicalize"
    }

    fn shows_coordinates(&self) -> bool {
        true
    }

    fn markdown(&self, summary: &Summary, _rows: &[&StoredRow], exp: &str) -> String {
        let columns = [
            (names::ACC_UPRIGHT, "upright"),
            (names::ACC_C8_AVG, "C8-averaged"),
            (names::INVARIANCE_ERROR, "invariance error"),
            (names::UPRIGHT_FRACTION, "mapped upright"),
        ];
        // (other axes, (rank, method)) -> metric -> "mean ± std".
        let mut table: BTreeMap<(Vec<String>, Ranked), BTreeMap<&str, String>> = BTreeMap::new();
        for r in summary
            .rows
            .iter()
            .filter(|r| r.experiment == exp && r.is_scalar())
        {
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
                let setting: Vec<String> = summary
                    .axis_columns
                    .iter()
                    .zip(axes)
                    .map(|(a, v)| format!("{a}={v}"))
                    .collect();
                if !setting.is_empty() {
                    md.push_str(&format!("\n{}\n", setting.join(", ")));
                }
                md.push_str("\n| method |");
                for (_, title) in &columns {
                    md.push_str(&format!(" {title} |"));
                }
                md.push_str("\n| --- |");
                md.push_str(&" --- |".repeat(columns.len()));
                md.push('\n');
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

    fn figures(
        &self,
        rows: &[&StoredRow],
        exp: &str,
        axis_columns: &[String],
        figures: &mut Figures,
    ) -> Result<(), ReportError> {
        let by_angle = values_by(rows, names::ACC_ROTATED, axis_columns, |r| {
            r.coords.index(names::ANGLE)
        });
        if by_angle.is_empty() {
            return Ok(());
        }
        let series = series_of(&by_angle, |&angle| angle as f64);
        let axes = Axes {
            title: format!("{exp}: accuracy per rotation of the test set"),
            x_label: "rotation (degrees, counterclockwise)".into(),
            y_label: "accuracy (%)".into(),
            x: Axes::fit_x(&series),
            y: Axes::fit_y(&series),
            integer_x: true,
        };
        render_lines(
            figures,
            &format!("canonicalize-acc-per-angle-{}", slug(exp)),
            (900, 440),
            &axes,
            &series,
        )
    }
}
