//! The debias view: bias-conflicting and unbiased accuracy against the
//! number of counterexamples k for every method (mean ± std over seeds), a
//! table at k = 1, 4, 16, the accuracy kept on the original (biased) task,
//! the classifier before tuning (aligned vs conflicting: the shortcut it
//! learned), and the paper's trade-off per k: bias removed (accuracy on
//! bias-conflicting images) against accuracy kept (clean test images), with
//! the worst (class, shortcut) group, as a table and a Pareto plot.

use std::collections::BTreeMap;

use reusebench_results::{StoredRow, names};

use super::{Drawn, Experiment, View, draw_lines, scalar_rows, table_header, values_by};
use crate::plot::{Axes, Figures, Scatter, mean_std, render_scatter, slug};

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
        md.push_str(&pareto_markdown(&at, &methods, &ks));
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
        draw_pareto(e, figures)?;
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

/// mean ± std by (method, k, metric).
type ByMethodK = BTreeMap<(String, String, String), (f64, f64)>;

/// Which methods no other method beats on both bias removed and accuracy
/// kept (≥ on both, > on one) at one k.
fn pareto_front(points: &[(String, f64, f64)]) -> Vec<bool> {
    points
        .iter()
        .map(|(_, x, y)| {
            !points
                .iter()
                .any(|(_, a, b)| a >= x && b >= y && (a > x || b > y))
        })
        .collect()
}

/// The trade-off per k: clean accuracy kept, bias removed, worst group,
/// and whether the method is on the Pareto front.
fn pareto_markdown(at: &ByMethodK, methods: &[String], ks: &[&str]) -> String {
    let mut md = String::from(
        "\n### Trade-off: bias removed against accuracy kept\n\nPer k: accuracy on clean (unbiased) test images — what is kept — against accuracy on bias-conflicting images — the bias removed — and the worst (class, shortcut agrees / disagrees) group; `front` marks methods no other method beats on both (the paper's claim: the penalised change is on it at small k). `before` is the classifier before tuning.\n",
    );
    for k in ks {
        let get = |m: &str, metric: &str| {
            at.get(&(m.to_string(), k.to_string(), metric.to_string()))
                .map(|v| v.0)
        };
        let mut points: Vec<(String, f64, f64)> = Vec::new();
        if let Some(m) = methods.first()
            && let (Some(x), Some(y)) = (
                get(
                    m,
                    &format!("{}{}", names::ACC_UNBIASED, names::BEFORE_SUFFIX),
                ),
                get(
                    m,
                    &format!("{}{}", names::ACC_CONFLICTING, names::BEFORE_SUFFIX),
                ),
            )
        {
            points.push(("before".into(), x, y));
        }
        for m in methods {
            if let (Some(x), Some(y)) =
                (get(m, names::ACC_UNBIASED), get(m, names::ACC_CONFLICTING))
            {
                points.push((m.clone(), x, y));
            }
        }
        if points.is_empty() {
            continue;
        }
        md.push_str(&format!("\nk = {k}\n\n"));
        md.push_str(&table_header(
            [
                "method",
                "clean (kept)",
                "conflicting (removed)",
                "worst group",
                "front",
            ]
            .iter()
            .map(|s| s.to_string()),
        ));
        for ((m, x, y), front) in points.iter().zip(pareto_front(&points)) {
            let worst = match m.as_str() {
                "before" => methods.first().and_then(|f| {
                    get(
                        f,
                        &format!("{}{}", names::WORST_GROUP_ACC, names::BEFORE_SUFFIX),
                    )
                }),
                _ => get(m, names::WORST_GROUP_ACC),
            }
            .map_or("–".to_string(), |w| format!("{w:.1}"));
            let mark = if front { "✓" } else { "" };
            md.push_str(&format!("| {m} | {x:.1} | {y:.1} | {worst} | {mark} |\n"));
        }
    }
    md
}

/// (clean accuracy, bias-conflicting accuracy) of a point, as far as known.
type XY = (Option<f64>, Option<f64>);

/// One Pareto plot per k: a point per method (mean over seeds), x the
/// clean accuracy kept, y the bias-conflicting accuracy.
fn draw_pareto(e: &Experiment, figures: &mut Figures) -> Drawn {
    let (exp, summary) = (e.name, e.summary);
    let Some(ki) = summary.axis_columns.iter().position(|a| a == K) else {
        return Ok(());
    };
    let mut by_k: BTreeMap<u32, BTreeMap<String, XY>> = BTreeMap::new();
    let mut before: BTreeMap<u32, XY> = BTreeMap::new();
    for r in scalar_rows(summary, exp) {
        let Ok(k) = r.axes[ki].parse::<u32>() else {
            continue;
        };
        let unbiased_before = format!("{}{}", names::ACC_UNBIASED, names::BEFORE_SUFFIX);
        let conflicting_before = format!("{}{}", names::ACC_CONFLICTING, names::BEFORE_SUFFIX);
        let slot = by_k
            .entry(k)
            .or_default()
            .entry(r.method.clone())
            .or_default();
        match r.metric.as_str() {
            m if m == names::ACC_UNBIASED => slot.0 = Some(r.mean),
            m if m == names::ACC_CONFLICTING => slot.1 = Some(r.mean),
            m if m == unbiased_before => before.entry(k).or_default().0 = Some(r.mean),
            m if m == conflicting_before => before.entry(k).or_default().1 = Some(r.mean),
            _ => {}
        }
    }
    for (k, methods) in by_k {
        let mut groups: Vec<Scatter> = methods
            .into_iter()
            .filter_map(|(m, (x, y))| Some((m, vec![(x?, y?)])))
            .collect();
        if let Some((Some(x), Some(y))) = before.get(&k) {
            groups.push(("before tuning".into(), vec![(*x, *y)]));
        }
        if groups.is_empty() {
            continue;
        }
        let all: Vec<(f64, f64)> = groups.iter().flat_map(|(_, p)| p.iter().copied()).collect();
        let span = |v: Vec<f64>| {
            let (lo, hi) = v
                .iter()
                .fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), &x| {
                    (a.min(x), b.max(x))
                });
            (lo - 2.0).max(0.0)..(hi + 2.0).min(100.0)
        };
        let axes = Axes {
            title: format!("{exp}: bias removed against accuracy kept, k = {k}"),
            x_label: "clean (unbiased) accuracy (%)".into(),
            y_label: "bias-conflicting accuracy (%)".into(),
            x: span(all.iter().map(|p| p.0).collect()),
            y: span(all.iter().map(|p| p.1).collect()),
            integer_x: false,
        };
        render_scatter(
            figures,
            &format!("debias-pareto-k{k}-{}", slug(exp)),
            &axes,
            &groups,
            None,
        )?;
    }
    Ok(())
}
