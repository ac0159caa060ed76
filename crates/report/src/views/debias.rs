//! The debias view: bias-conflicting and unbiased accuracy against the
//! number of counterexamples k for every method (mean ± std over seeds), a
//! table at k = 1, 4, 16, the accuracy kept on the original (biased) task,
//! and the classifier before tuning (aligned vs conflicting: the shortcut
//! it learned).

use std::collections::BTreeMap;

use reusebench_results::{StoredRow, names};

use super::{Drawn, Experiment, View, draw_lines, scalar_rows, table_header, values_by};
use crate::plot::{Figures, mean_std, slug};

pub struct DebiasView;

/// The grid axis holding the number of counterexamples.
const K: &str = "k";
const TABLE_KS: [&str; 3] = ["1", "4", "16"];

fn k_of(r: &StoredRow) -> Option<u32> {
    r.axis(K).parse().ok()
}

impl View for DebiasView {
    fn markdown(&self, e: &Experiment) -> String {
        let (exp, rows, summary) = (e.name, e.rows, e.summary);
        let Some(ki) = summary.axis_columns.iter().position(|a| a == K) else {
            return String::new();
        };
        // mean ± std by (method, k, metric), scalars of this experiment.
        let mut at: BTreeMap<(String, String, String), (f64, f64)> = BTreeMap::new();
        for r in scalar_rows(summary, exp) {
            at.insert(
                (r.method.clone(), r.axes[ki].clone(), r.metric.clone()),
                (r.mean, r.std),
            );
        }
        let methods: Vec<String> = {
            let mut m: Vec<String> = at.keys().map(|(m, _, _)| m.clone()).collect();
            m.dedup();
            m
        };
        let show =
            |m: &str, k: &str, metric: &str| match at.get(&(m.into(), k.into(), metric.into())) {
                Some((mean, std)) if std.is_finite() => format!("{mean:.1} ± {std:.1}"),
                Some((mean, _)) => format!("{mean:.1}"),
                None => "–".into(),
            };
        let mut md = String::new();
        // The classifier before tuning: the same for every cell of a seed.
        let before = |metric: &str| {
            let v: Vec<f64> = rows
                .iter()
                .filter(|r| r.metric == format!("{metric}{}", names::BEFORE_SUFFIX))
                .map(|r| r.value)
                .collect();
            mean_std(&v).0
        };
        md.push_str(&format!(
            "\n### The biased classifier before tuning\n\naligned {:.1} · conflicting {:.1} · unbiased {:.1} · original task {:.1} (%, mean over cells)\n",
            before(names::ACC_ALIGNED),
            before(names::ACC_CONFLICTING),
            before(names::ACC_UNBIASED),
            before(names::ACC_ORIGINAL),
        ));
        let ks: Vec<&str> = TABLE_KS
            .iter()
            .copied()
            .filter(|k| at.keys().any(|(_, kk, _)| kk == k))
            .collect();
        if ks.is_empty() {
            return md;
        }
        md.push_str(
            "\n### Bias-conflicting / unbiased accuracy after tuning on k counterexamples\n",
        );
        let pairs = ks
            .iter()
            .flat_map(|k| [format!("k={k} conflicting"), format!("k={k} unbiased")]);
        md.push_str(&table_header(std::iter::once("method".into()).chain(pairs)));
        for m in &methods {
            md.push_str(&format!("| {m} |"));
            for k in &ks {
                md.push_str(&format!(
                    " {} | {} |",
                    show(m, k, names::ACC_CONFLICTING),
                    show(m, k, names::ACC_UNBIASED)
                ));
            }
            md.push('\n');
        }
        md.push_str("\n### Accuracy kept on the original task (after − before, points)\n");
        let columns = ks.iter().map(|k| format!("k={k}"));
        md.push_str(&table_header(
            std::iter::once("method".into()).chain(columns),
        ));
        for m in &methods {
            md.push_str(&format!("| {m} |"));
            for k in &ks {
                let key = |metric: String| at.get(&(m.clone(), k.to_string(), metric)).map(|v| v.0);
                let cell = match (
                    key(names::ACC_ORIGINAL.to_string()),
                    key(format!("{}{}", names::ACC_ORIGINAL, names::BEFORE_SUFFIX)),
                ) {
                    (Some(a), Some(b)) => format!("{:+.1}", a - b),
                    _ => "–".into(),
                };
                md.push_str(&format!(" {cell} |"));
            }
            md.push('\n');
        }
        md
    }

    fn figures(&self, e: &Experiment, figures: &mut Figures) -> Drawn {
        let (exp, rows, axis_columns) = (e.name, e.rows, &e.summary.axis_columns[..]);
        let others: Vec<String> = axis_columns.iter().filter(|a| *a != K).cloned().collect();
        for (metric, what, file) in [
            (
                names::ACC_CONFLICTING,
                "bias-conflicting accuracy (%)",
                "conflicting",
            ),
            (names::ACC_UNBIASED, "unbiased accuracy (%)", "unbiased"),
        ] {
            let by_k = values_by(rows, metric, &others, k_of);
            let name = format!("debias-{file}-vs-k-{}", slug(exp));
            let title = format!("{exp}: {what} against k");
            let labels = [title.as_str(), "log2 k (counterexamples)", what];
            draw_lines(
                figures,
                &name,
                (860, 440),
                &by_k,
                |&k| (k as f64).log2(),
                labels,
            )?;
        }
        Ok(())
    }
}
