//! What a `tune:` search leaves in a cell's folder (`tuning.json`): the
//! runner writes it, the report reads it.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// Whether the objective is maximised or minimised.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Direction {
    #[default]
    Max,
    Min,
}

impl Direction {
    /// Whether `a` is a better objective than `b` (NaN is never better).
    pub fn better(self, a: f64, b: f64) -> bool {
        match self {
            Direction::Max => a > b || (b.is_nan() && !a.is_nan()),
            Direction::Min => a < b || (b.is_nan() && !a.is_nan()),
        }
    }
}

/// `lr=0.01 lambda=3`: tuned values for a label, each key by its last part
/// (`method.optimizer.lr` → `lr`), or by as many of its last parts as tell
/// it apart from the other keys (LP-FT's `lp_optimizer.lr` and
/// `ft_optimizer.lr`).
pub fn values_label(values: &Map<String, Value>) -> String {
    let parts: Vec<Vec<&str>> = values.keys().map(|k| k.split('.').collect()).collect();
    let suffix = |p: &[&str], n: usize| p[p.len().saturating_sub(n)..].join(".");
    parts
        .iter()
        .zip(values.values())
        .map(|(p, v)| {
            let mut n = 1;
            while n < p.len()
                && parts
                    .iter()
                    .filter(|q| suffix(q, n) == suffix(p, n))
                    .count()
                    > 1
            {
                n += 1;
            }
            format!("{}={v}", suffix(p, n))
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// What a tuned cell is, as its `tuning.json` records it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TuningRecord {
    /// `trial` (scored on validation) or `final` (scored on test).
    pub role: String,
    /// The values of the experiment's other axes (the search is per group).
    pub group: String,
    /// Which configuration of the group: its position in the search.
    pub trial: usize,
    /// The rung of successive halving (0 without halving).
    pub rung: usize,
    /// The tuned keys' values.
    pub values: Map<String, Value>,
    /// Final runs: the selected configuration's mean validation objective.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub validation_score: Option<f64>,
    pub objective: String,
    pub direction: Direction,
    /// Configurations the search tried (the first rung).
    pub trials: usize,
    /// In words: `random search, 8 trials` and the like.
    pub search: String,
    /// Trial cells that failed and were left out of the ranking.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub failed_trials: Vec<String>,
}

/// The file in a tuned cell's folder that says what it is.
pub const TUNING_FILE: &str = "tuning.json";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_label_names_keys_by_as_many_last_parts_as_tell_them_apart() {
        let values: Map<String, Value> = serde_json::from_str(
            r#"{"method.ft_optimizer.lr": 0.01, "method.lp_optimizer.lr": 0.1, "method.lambda": 3}"#,
        )
        .unwrap();
        assert_eq!(
            values_label(&values),
            "ft_optimizer.lr=0.01 lp_optimizer.lr=0.1 lambda=3"
        );
        let one: Map<String, Value> =
            serde_json::from_str(r#"{"method.optimizer.lr": 0.5}"#).unwrap();
        assert_eq!(values_label(&one), "lr=0.5");
    }
}
