//! What a `tune:` search selected and how: a table per experiment (the
//! selected values, their validation score, the trial count and the
//! search) and a search plot per group (the objective against the tuned
//! value, or against the trial index when more than one key is tuned).

use std::collections::BTreeMap;

use crate::error::ReportError;
use crate::plot::{Axes, Figures, Scatter, render_scatter, slug};
use crate::rows::TunedCell;
use reusebench_results::tuning::values_label;

/// The tuning section of experiment `exp`; empty when it has no search.
pub fn markdown(tuned: &[TunedCell], exp: &str) -> String {
    let finals: Vec<&TunedCell> = tuned
        .iter()
        .filter(|t| t.experiment == exp && !t.is_trial())
        .collect();
    let trials = tuned
        .iter()
        .filter(|t| t.experiment == exp && t.is_trial())
        .count();
    if finals.is_empty() && trials == 0 {
        return String::new();
    }
    // Per group: the final runs' record (the same selection for every seed) and seeds.
    let mut groups: BTreeMap<&str, (&TunedCell, Vec<u64>)> = BTreeMap::new();
    for f in &finals {
        groups
            .entry(f.record.group.as_str())
            .or_insert((f, Vec::new()))
            .1
            .push(f.seed);
    }
    let mut md = String::from("\n### Hyperparameters selected on validation\n\n");
    md.push_str(
        "Every row of this experiment's tables above is a **selected** configuration: a search \
         on the validation split (held out of training; trials never read the test split) chose \
         it for its group, and it was then run again on the final seeds and scored on test.\n\n",
    );
    md.push_str("| group | selected | validation objective | trials | search | final seeds |\n");
    md.push_str("| --- | --- | --- | --- | --- | --- |\n");
    let mut groups: Vec<_> = groups.into_iter().collect();
    groups.sort_by_key(|(g, _)| natural_key(g));
    for (group, (f, mut seeds)) in groups {
        seeds.sort_unstable();
        let r = &f.record;
        let score = r
            .validation_score
            .map_or("–".to_string(), |v| format!("{v:.2}"));
        let mut search = r.search.clone();
        if !r.failed_trials.is_empty() {
            search.push_str(&format!("; {} trial cell(s) failed", r.failed_trials.len()));
        }
        let direction = match r.direction {
            reusebench_results::tuning::Direction::Max => "max",
            reusebench_results::tuning::Direction::Min => "min",
        };
        let selected = match values_label(&r.values) {
            v if v.is_empty() => "(nothing tuned)".to_string(),
            v => v,
        };
        md.push_str(&format!(
            "| {group} | {selected} | {score} ({} {direction}) | {} | {search} | {} |\n",
            r.objective,
            r.trials,
            seeds
                .iter()
                .map(u64::to_string)
                .collect::<Vec<_>>()
                .join(", ")
        ));
    }
    let counts: std::collections::BTreeSet<usize> =
        finals.iter().map(|f| f.record.trials).collect();
    if counts.len() > 1 {
        md.push_str(
            "\n**Unequal budgets**: the groups tried different numbers of configurations (a grid \
             search over spaces of different sizes); give `trials:` to search each with the same budget.\n",
        );
    }
    if finals.is_empty() {
        md.push_str(&format!(
            "\n{trials} trial cell(s) done; no final run yet (they run once every trial of their group has finished).\n"
        ));
    }
    md
}

/// `k=16` after `k=4`: runs of digits compare as numbers.
fn natural_key(s: &str) -> Vec<(String, u64)> {
    let mut out = Vec::new();
    let (mut text, mut digits) = (String::new(), String::new());
    for c in s.chars() {
        if c.is_ascii_digit() {
            digits.push(c);
        } else {
            if !digits.is_empty() {
                out.push((
                    std::mem::take(&mut text),
                    digits.parse().unwrap_or(u64::MAX),
                ));
                digits.clear();
            }
            text.push(c);
        }
    }
    out.push((text, digits.parse().unwrap_or(0)));
    out
}

/// The x of a trial in the search plot: the tuned value (log10 where the
/// values span a decade or more) when one key is tuned, else the trial index.
/// A trial's x in the search plot.
type XOf = Box<dyn Fn(&TunedCell) -> f64>;

fn x_axis(trials: &[&TunedCell]) -> (String, XOf) {
    let keys: std::collections::BTreeSet<&String> =
        trials.iter().flat_map(|t| t.record.values.keys()).collect();
    let numeric = |t: &TunedCell| -> Option<f64> { t.record.values.values().next()?.as_f64() };
    if keys.len() == 1 && trials.iter().all(|t| numeric(t).is_some()) {
        let key = keys.into_iter().next().expect("one key").clone();
        let values: Vec<f64> = trials.iter().filter_map(|t| numeric(t)).collect();
        let (lo, hi) = values
            .iter()
            .fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), &v| {
                (a.min(v), b.max(v))
            });
        if lo > 0.0 && hi / lo >= 10.0 {
            return (
                format!("log10 {key}"),
                Box::new(move |t| numeric(t).map_or(f64::NAN, f64::log10)),
            );
        }
        return (key, Box::new(move |t| numeric(t).unwrap_or(f64::NAN)));
    }
    ("trial".into(), Box::new(|t| t.record.trial as f64))
}

/// One search plot per group of experiment `exp` (its first-rung trials).
pub fn figures(tuned: &[TunedCell], exp: &str, figures: &mut Figures) -> Result<(), ReportError> {
    let mut by_group: BTreeMap<&str, Vec<&TunedCell>> = BTreeMap::new();
    for t in tuned
        .iter()
        .filter(|t| t.experiment == exp && t.is_trial() && t.record.rung == 0)
    {
        by_group.entry(t.record.group.as_str()).or_default().push(t);
    }
    for (group, trials) in by_group {
        let (x_label, x) = x_axis(&trials);
        let points: Vec<(f64, f64)> = trials
            .iter()
            .filter_map(|t| Some((x(t), t.objective?)))
            .filter(|(a, b)| a.is_finite() && b.is_finite())
            .collect();
        if points.is_empty() {
            continue;
        }
        let objective = &trials[0].record.objective;
        let groups: Vec<Scatter> = vec![(format!("{group}: trials (validation)"), points)];
        let axes = Axes {
            title: format!("{exp} {group}: search ({})", trials[0].record.search),
            x_label,
            y_label: format!("validation {objective}"),
            x: padded(groups[0].1.iter().map(|p| p.0)),
            y: padded(groups[0].1.iter().map(|p| p.1)),
            integer_x: false,
        };
        let name = format!("search_{}_{}", slug(exp), slug(group));
        render_scatter(figures, &name, &axes, &groups, None)?;
    }
    Ok(())
}

/// The range of `values` with 5 % room on each side (1 where they are equal).
fn padded(values: impl Iterator<Item = f64>) -> std::ops::Range<f64> {
    let (lo, hi) = values.fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), v| {
        (a.min(v), b.max(v))
    });
    let pad = if hi > lo { (hi - lo) * 0.05 } else { 1.0 };
    lo - pad..hi + pad
}
