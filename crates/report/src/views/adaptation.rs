//! The continual view's adaptation tables (Sun et al.'s evaluation): per
//! method and shots per class, the adapted accuracy after the last task,
//! the gain over adapting a random start, the forgetting seen through
//! adaptation and the downstream accuracy, with intervals over seeds and
//! paired differences from the experiment's baseline. These rows carry the
//! `shots` coordinate when the grid adapts at several shots, so the generic
//! scalar table leaves them out.

use std::collections::BTreeMap;

use reusebench_results::{StoredRow, names};

use super::{Experiment, group_label};
use crate::aggregate::{SeedValues, paired_cell, seeds_cell};
use crate::stats::{Paired, paired_diffs};

/// The columns: what each is, and how a seed's value is read.
const COLUMNS: [(&str, Read); 4] = [
    (names::ADAPT_ACC, Read::MeanOverTasksAtLast),
    (names::ADAPT_GAIN, Read::Scalar),
    (names::ADAPT_FORGETTING, Read::Scalar),
    (names::ADAPT_DOWNSTREAM_ACC, Read::AtLast),
];

#[derive(Clone, Copy)]
enum Read {
    /// The row without `after_task` (or `task`): one value per seed.
    Scalar,
    /// Mean over tasks of the rows after the last task (all rows when they
    /// carry no `after_task`: adaptation after the sequence only).
    MeanOverTasksAtLast,
    /// The row after the last task.
    AtLast,
}

/// (method, extra axis values), shots ("all" when the grid gives none).
type Key = ((String, Vec<String>), String);

/// Per key and column: seed → value.
type BySeed = BTreeMap<Key, [BTreeMap<u64, f64>; 4]>;

/// One row's place and value: `after_task`, whether it has a `task`.
type Point = (Option<usize>, bool, f64);

fn shots_of(r: &StoredRow) -> String {
    r.coords
        .index(names::SHOTS)
        .map_or_else(|| "all".to_string(), |n| n.to_string())
}

fn values(e: &Experiment) -> BySeed {
    let axis_columns = &e.summary.axis_columns;
    let key = |r: &StoredRow| {
        let axes = axis_columns.iter().map(|a| r.axis(a)).collect();
        ((r.method.clone(), axes), shots_of(r))
    };
    let mut out = BySeed::new();
    for (c, (metric, read)) in COLUMNS.iter().enumerate() {
        let rows: Vec<&StoredRow> = e
            .rows
            .iter()
            .copied()
            .filter(|r| r.metric == *metric && r.value.is_finite())
            .collect();
        let mut points: BTreeMap<(Key, u64), Vec<Point>> = BTreeMap::new();
        for r in rows {
            let task = r.coords.get(names::TASK).is_some();
            points.entry((key(r), r.seed)).or_default().push((
                r.coords.index(names::AFTER_TASK),
                task,
                r.value,
            ));
        }
        for ((k, seed), pts) in points {
            let last = pts.iter().filter_map(|p| p.0).max();
            let at_last = pts.iter().filter(|p| p.0 == last);
            let value = match read {
                Read::Scalar => pts.iter().find(|p| p.0.is_none() && !p.1).map(|p| p.2),
                Read::AtLast => at_last.clone().find(|p| !p.1).map(|p| p.2),
                Read::MeanOverTasksAtLast => {
                    let v: Vec<f64> = at_last.filter(|p| p.1).map(|p| p.2).collect();
                    (!v.is_empty()).then(|| v.iter().sum::<f64>() / v.len() as f64)
                }
            };
            if let Some(v) = value {
                out.entry(k).or_default()[c].insert(seed, v);
            }
        }
    }
    out
}

fn group_name((method, axes): &(String, Vec<String>), axis_columns: &[String]) -> String {
    group_label(method, axis_columns, axes)
}

/// Shots in numeric order ("all" last).
fn shots_order(s: &str) -> (usize, usize) {
    s.parse().map_or((1, 0), |n| (0, n))
}

/// Per shots per class (numeric order), each group's adapted accuracy
/// after the last task per seed, as the table below reads it; empty when
/// the grid adapts once (its scalar `adapt_acc` is in the generic tables).
pub fn accuracy_by_shots(e: &Experiment) -> Vec<(String, SeedValues)> {
    let mut out: BTreeMap<String, SeedValues> = BTreeMap::new();
    for ((group, shots), cols) in values(e) {
        if shots != "all" && !cols[0].is_empty() {
            out.entry(shots).or_default().insert(group, cols[0].clone());
        }
    }
    let mut out: Vec<_> = out.into_iter().collect();
    out.sort_by_key(|(s, _)| shots_order(s));
    out
}

/// The adaptation tables of a continual experiment; empty when it has no
/// adaptation rows.
pub fn markdown(e: &Experiment) -> String {
    let by = values(e);
    if by.is_empty() {
        return String::new();
    }
    let axis_columns = &e.summary.axis_columns;
    let mut keys: Vec<&Key> = by.keys().collect();
    keys.sort_by_key(|(g, s)| (shots_order(s), g.clone()));
    let present: Vec<usize> = (0..COLUMNS.len())
        .filter(|&c| by.values().any(|v| !v[c].is_empty()))
        .collect();
    let mut out = String::from(
        "\n### Adaptation (Sun et al.): per shots per class\n\n\
         After the last task: `adapt_acc` is the adapted model's test accuracy, mean over \
         tasks; `adapt_gain` its mean gain over adapting a randomly initialised backbone \
         the same way; `adapt_forgetting` the mean drop of a task's adapted accuracy from \
         its best; `adapt_downstream_acc` the accuracy on the task never trained on. \
         Mean ± std over seeds [95% confidence interval].\n\n",
    );
    let mut header = vec!["method".to_string(), "shots".to_string()];
    header.extend(present.iter().map(|&c| COLUMNS[c].0.to_string()));
    header.push("n".into());
    out.push_str(&format!("| {} |\n", header.join(" | ")));
    out.push_str(&format!("|{}\n", " --- |".repeat(header.len())));
    for k in &keys {
        let cols = &by[*k];
        let mut line = vec![group_name(&k.0, axis_columns), k.1.clone()];
        line.extend(present.iter().map(|&c| seeds_cell(&cols[c])));
        let n = present.iter().map(|&c| cols[c].len()).max().unwrap_or(0);
        line.push(n.to_string());
        out.push_str(&format!("| {} |\n", line.join(" | ")));
    }
    let Some(baseline) = e.baseline else {
        return out;
    };
    let mut paired = String::new();
    for k in &keys {
        let ((method, axes), shots) = k;
        if method == baseline {
            continue;
        }
        let base_key = ((baseline.to_string(), axes.clone()), shots.clone());
        let Some(base) = by.get(&base_key) else {
            continue;
        };
        let cols = &by[*k];
        let mut line = vec![group_name(&k.0, axis_columns), shots.clone()];
        let mut pairs = 0;
        for &c in &present {
            let diffs = paired_diffs(&cols[c], &base[c]);
            pairs = pairs.max(diffs.len());
            line.push(if diffs.is_empty() {
                "–".into()
            } else {
                paired_cell(&Paired::of(&diffs))
            });
        }
        line.push(pairs.to_string());
        paired.push_str(&format!("| {} |\n", line.join(" | ")));
    }
    if !paired.is_empty() {
        out.push_str(&format!(
            "\n### Adaptation: paired against `{baseline}` (same seeds, same shots)\n\n\
             Δ = method − {baseline}, mean over the seeds both ran [95% confidence interval, \
             paired t]; `*` marks an interval that excludes 0.\n\n"
        ));
        let mut header = vec!["method".to_string(), "shots".to_string()];
        header.extend(present.iter().map(|&c| format!("Δ {}", COLUMNS[c].0)));
        header.push("pairs".into());
        out.push_str(&format!("| {} |\n", header.join(" | ")));
        out.push_str(&format!("|{}\n", " --- |".repeat(header.len())));
        out.push_str(&paired);
    }
    out
}
