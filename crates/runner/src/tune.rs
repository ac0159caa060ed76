//! An experiment's `tune:` block: a search space over config keys, searched
//! on the validation split per value of the experiment's other axes, then
//! the selected configuration rerun on the final seeds and scored on test.
//!
//! ```yaml
//! tune:
//!   space:                                   # every method
//!     method.optimizer.lr: { loguniform: [1.0e-4, 1.0e-1] }
//!   methods:                                 # one method's own keys
//!     change-penalty: { method.lambda: { loguniform: [1.0e-6, 100] } }
//!   trials: 8               # seeded random search; absent: every list combination
//!   objective: acc_conflicting               # default: the protocol's
//!   direction: max
//!   seeds: [0, 1, 2]                         # final runs
//!   trial_seeds: [0]                         # default: the first final seed
//!   halving: { key: epochs, min: 1, max: 4, eta: 2 }   # optional
//! ```
//!
//! A key's values are a list (grid search; `choice` in a random search) or
//! a distribution: `loguniform: [low, high]`, `uniform: [low, high]`,
//! `int: [low, high]` (both ends included), `choice: [...]`.
//!
//! Successive halving runs every trial at `min` of the budget key, then
//! the best 1/`eta` again (from scratch) at `eta` times the budget, and so
//! on up to `max`; the final runs use `max`.

use std::collections::BTreeMap;

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

pub use reusebench_results::tuning::{Direction, TUNING_FILE, TuningRecord};

/// What the grid writes under `tune:`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawTune {
    #[serde(default)]
    pub space: Map<String, Value>,
    #[serde(default)]
    pub methods: Map<String, Value>,
    #[serde(default)]
    pub trials: Option<usize>,
    #[serde(default)]
    pub objective: Option<String>,
    #[serde(default)]
    pub direction: Direction,
    pub seeds: Vec<u64>,
    #[serde(default)]
    pub trial_seeds: Option<Vec<u64>>,
    #[serde(default)]
    pub halving: Option<Halving>,
}

/// Successive halving over an integer budget key (`epochs`, `tuning.max_steps`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Halving {
    pub key: String,
    pub min: u64,
    pub max: u64,
    #[serde(default = "default_eta")]
    pub eta: u64,
}

fn default_eta() -> u64 {
    2
}

impl Halving {
    /// (budget, configurations) of every rung: the first runs `trials`
    /// configurations at `min`. A rung of one configuration would only
    /// confirm it, so the last rung keeps at least two; its best goes to
    /// the final runs at `max`.
    pub fn rungs(&self, trials: usize) -> Vec<(u64, usize)> {
        let mut out = vec![(self.min, trials)];
        let (mut budget, mut kept) = (self.min, trials);
        while budget < self.max && kept.div_ceil(self.eta as usize) > 1 {
            budget = (budget * self.eta).min(self.max);
            kept = kept.div_ceil(self.eta as usize);
            out.push((budget, kept));
        }
        out
    }
}

/// One tuned key's values.
#[derive(Debug, Clone, PartialEq)]
pub enum Dist {
    List(Vec<Value>),
    LogUniform(f64, f64),
    Uniform(f64, f64),
    Int(i64, i64),
}

impl Dist {
    /// Parses a key's entry; the error says what is wrong with it.
    pub fn parse(v: &Value) -> Result<Dist, String> {
        let range = |name: &str, x: &Value| -> Result<(f64, f64), String> {
            let pair = x
                .as_array()
                .filter(|a| a.len() == 2)
                .and_then(|a| Some((a[0].as_f64()?, a[1].as_f64()?)));
            let (lo, hi) =
                pair.ok_or_else(|| format!("`{name}` takes [low, high], two numbers"))?;
            if lo >= hi || lo.is_nan() || hi.is_nan() {
                return Err(format!(
                    "`{name}`: low must be below high, got [{lo}, {hi}]"
                ));
            }
            Ok((lo, hi))
        };
        match v {
            Value::Array(a) if !a.is_empty() => Ok(Dist::List(a.clone())),
            Value::Array(_) => Err("an empty list of values".into()),
            Value::Object(m) if m.len() == 1 => {
                let (name, x) = m.iter().next().expect("one entry");
                match name.as_str() {
                    "loguniform" => {
                        let (lo, hi) = range(name, x)?;
                        if lo <= 0.0 {
                            return Err(format!("`loguniform` needs low > 0, got {lo}"));
                        }
                        Ok(Dist::LogUniform(lo, hi))
                    }
                    "uniform" => range(name, x).map(|(lo, hi)| Dist::Uniform(lo, hi)),
                    "int" => {
                        let (lo, hi) = range(name, x)?;
                        if lo.fract() != 0.0 || hi.fract() != 0.0 {
                            return Err(format!("`int` takes whole numbers, got [{lo}, {hi}]"));
                        }
                        Ok(Dist::Int(lo as i64, hi as i64))
                    }
                    "choice" => match x {
                        Value::Array(a) if !a.is_empty() => Ok(Dist::List(a.clone())),
                        _ => Err("`choice` takes a non-empty list".into()),
                    },
                    other => Err(format!(
                        "unknown distribution `{other}` (known: loguniform, uniform, int, choice, or a list of values)"
                    )),
                }
            }
            _ => Err(
                "a list of values, or one of { loguniform: [low, high] }, { uniform: [low, high] }, \
                 { int: [low, high] }, { choice: [...] }"
                    .into(),
            ),
        }
    }

    fn sample(&self, rng: &mut ChaCha8Rng) -> Value {
        match self {
            Dist::List(v) => v[rng.random_range(0..v.len())].clone(),
            Dist::LogUniform(lo, hi) => number(round_significant(
                (lo.ln() + rng.random::<f64>() * (hi.ln() - lo.ln())).exp(),
            )),
            Dist::Uniform(lo, hi) => {
                number(round_significant(lo + rng.random::<f64>() * (hi - lo)))
            }
            Dist::Int(lo, hi) => Value::from(rng.random_range(*lo..=*hi)),
        }
    }
}

/// Four significant digits: the values read well in labels and tables, and
/// a search this size cannot tell the digits after them apart.
fn round_significant(x: f64) -> f64 {
    if x == 0.0 || !x.is_finite() {
        return x;
    }
    let digits = 3 - x.abs().log10().floor() as i32;
    let scale = 10f64.powi(digits);
    (x * scale).round() / scale
}

fn number(x: f64) -> Value {
    serde_json::Number::from_f64(x).map_or(Value::Null, Value::Number)
}

/// How a group's configurations are searched.
#[derive(Debug, Clone, PartialEq)]
pub enum Search {
    /// Every combination of the lists.
    Grid,
    /// `n` seeded draws.
    Random(usize),
}

impl Search {
    pub fn of(tune: &RawTune, space: &[(String, Dist)]) -> Result<Search, (String, String)> {
        match tune.trials {
            Some(0) => Err(("trials".into(), "must be at least 1, got 0".into())),
            Some(n) => Ok(Search::Random(n)),
            None if space.iter().all(|(_, d)| matches!(d, Dist::List(_))) => Ok(Search::Grid),
            None => Err((
                "trials".into(),
                "a space with distributions needs `trials: N` (a random search)".into(),
            )),
        }
    }
}

/// The configurations to try: key -> value maps, in a fixed order. A
/// random search draws from a stream seeded by the experiment and the
/// tuned keys, so every group with the same space tries the same values
/// (the comparison between methods is paired); duplicate draws are skipped.
pub fn configurations(
    experiment: &str,
    space: &[(String, Dist)],
    search: &Search,
) -> Vec<Map<String, Value>> {
    match search {
        Search::Grid => {
            let mut out = vec![Map::new()];
            for (key, dist) in space {
                let Dist::List(values) = dist else {
                    unreachable!("grid search has lists only")
                };
                out = out
                    .into_iter()
                    .flat_map(|m| {
                        values.iter().map(move |v| {
                            let mut m = m.clone();
                            m.insert(key.clone(), v.clone());
                            m
                        })
                    })
                    .collect();
            }
            out
        }
        Search::Random(n) => {
            let mut h = Sha256::new();
            h.update(experiment.as_bytes());
            for (k, _) in space {
                h.update([0]);
                h.update(k.as_bytes());
            }
            let seed = u64::from_le_bytes(h.finalize()[..8].try_into().expect("8 bytes"));
            let mut rng = ChaCha8Rng::seed_from_u64(seed);
            let mut out: Vec<Map<String, Value>> = Vec::new();
            let mut attempts = 0;
            while out.len() < *n && attempts < 100 * n {
                attempts += 1;
                let draw: Map<String, Value> = space
                    .iter()
                    .map(|(k, d)| (k.clone(), d.sample(&mut rng)))
                    .collect();
                if !out.contains(&draw) {
                    out.push(draw);
                }
            }
            out
        }
    }
}

/// Per configuration (its trial index): mean objective over the cells that
/// scored it. Used to rank a rung.
pub fn mean_by_trial(scores: &[(usize, f64)]) -> BTreeMap<usize, f64> {
    let mut sums: BTreeMap<usize, (f64, usize)> = BTreeMap::new();
    for &(t, v) in scores {
        let e = sums.entry(t).or_default();
        e.0 += v;
        e.1 += 1;
    }
    sums.into_iter()
        .map(|(t, (s, n))| (t, s / n as f64))
        .collect()
}

/// Trial indices best first (ties: the earlier trial).
pub fn ranked(means: &BTreeMap<usize, f64>, direction: Direction) -> Vec<usize> {
    let mut order: Vec<usize> = means.keys().copied().collect();
    order.sort_by(|a, b| {
        let (x, y) = (means[a], means[b]);
        if direction.better(x, y) {
            std::cmp::Ordering::Less
        } else if direction.better(y, x) {
            std::cmp::Ordering::Greater
        } else {
            a.cmp(b)
        }
    });
    order
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn distributions_parse_and_refuse() {
        let p = |s: &str| Dist::parse(&serde_json::from_str(s).unwrap());
        assert_eq!(
            p(r#"{"loguniform": [1e-5, 0.1]}"#),
            Ok(Dist::LogUniform(1e-5, 0.1))
        );
        assert_eq!(p(r#"{"int": [1, 4]}"#), Ok(Dist::Int(1, 4)));
        assert!(
            p(r#"{"normal": [0, 1]}"#)
                .unwrap_err()
                .contains("unknown distribution `normal`")
        );
        assert!(
            p(r#"{"uniform": [1, 1]}"#)
                .unwrap_err()
                .contains("low must be below high")
        );
        assert!(
            p(r#"{"loguniform": [0, 1]}"#)
                .unwrap_err()
                .contains("low > 0")
        );
        assert!(p("[]").unwrap_err().contains("empty"));
    }

    #[test]
    fn random_search_is_seeded_distinct_and_in_range() {
        let space = vec![
            ("lr".to_string(), Dist::LogUniform(1e-4, 1e-1)),
            ("k".to_string(), Dist::Int(1, 3)),
        ];
        let a = configurations("e", &space, &Search::Random(6));
        assert_eq!(a, configurations("e", &space, &Search::Random(6)));
        assert_eq!(a.len(), 6);
        for m in &a {
            let lr = m["lr"].as_f64().unwrap();
            assert!((1e-4..=1e-1).contains(&lr), "{lr}");
            assert!((1..=3).contains(&m["k"].as_i64().unwrap()));
        }
        // Three values only: the search stops at what exists.
        let small = vec![(
            "k".to_string(),
            Dist::List(vec![1.into(), 2.into(), 3.into()]),
        )];
        assert_eq!(configurations("e", &small, &Search::Random(10)).len(), 3);
        let grid = configurations(
            "e",
            &[
                small[0].clone(),
                ("x".into(), Dist::List(vec![0.into(), 1.into()])),
            ],
            &Search::Grid,
        );
        assert_eq!(grid.len(), 6);
    }

    #[test]
    fn halving_rungs_and_ranking() {
        let h = Halving {
            key: "epochs".into(),
            min: 1,
            max: 4,
            eta: 2,
        };
        assert_eq!(h.rungs(8), vec![(1, 8), (2, 4), (4, 2)]);
        assert_eq!(h.rungs(1), vec![(1, 1)]);
        let means = mean_by_trial(&[(0, 1.0), (1, 3.0), (1, 5.0), (2, f64::NAN), (3, 4.0)]);
        assert_eq!(means[&1], 4.0);
        assert_eq!(ranked(&means, Direction::Max), vec![1, 3, 0, 2]);
        assert_eq!(ranked(&means, Direction::Min), vec![0, 1, 3, 2]);
    }
}
