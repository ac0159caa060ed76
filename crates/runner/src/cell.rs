//! A cell: one fully resolved configuration of one experiment, with a
//! deterministic id derived from that configuration.

use std::sync::Arc;

use sha2::{Digest, Sha256};

use reusebench_core::HeldOut;

use crate::registry::CellConfig;
use crate::tune::TuningRecord;

#[derive(Debug, Clone)]
pub struct Cell {
    pub id: String,
    pub experiment: String,
    /// The protocol's registered name.
    pub protocol: String,
    pub config: Arc<dyn CellConfig>,
    /// The resolved configuration as JSON (what the id hashes, placeholders kept).
    pub config_json: serde_json::Value,
    /// Axis key -> this cell's value: scalars as the grid writes them,
    /// mappings by their label.
    pub axes: Vec<(String, serde_json::Value)>,
    /// What sets this cell apart within its experiment: the axes with more
    /// than one value, `key=value` (a method axis by its label alone).
    pub label: String,
    /// Meter the whole cell's energy (the experiment's `energy:`); not part
    /// of the id: metering does not change what a cell computes.
    pub energy: Option<reusebench_core::cost::CostConfig>,
    /// The validation split and the split the cell is scored on (the grid
    /// keys `validation:` and `split:`, which every protocol has).
    pub held_out: HeldOut,
    /// Where the cell stands in its experiment's `tune:` search, if it has one.
    pub tuning: Option<CellTuning>,
}

/// The phase of a tuned experiment's final runs.
pub const FINAL_PHASE: usize = usize::MAX;

/// A tuned experiment's cell: a trial whose configuration the grid fixes,
/// or one chosen at run time from the cells before it.
#[derive(Debug, Clone)]
pub enum CellTuning {
    Trial(Box<TuningRecord>),
    Pick(Arc<Pick>),
}

/// A cell whose tuned values are the `rank`-th best configuration of the
/// `from` cells (the previous rung, or the last one for a final run).
#[derive(Debug, Clone)]
pub struct Pick {
    /// The cell's config before its tuned values are set (placeholders kept).
    pub template: serde_json::Value,
    pub from: Vec<usize>,
    pub rank: usize,
    /// Role, group, rung, objective and search; the values come at run time.
    pub record: TuningRecord,
    /// Where its placeholders point.
    pub results: crate::grid::Places,
}

impl Cell {
    /// The typed config with every default applied, the held-out split
    /// included: what the cell's identity hashes.
    pub fn typed_json(&self) -> serde_json::Value {
        let mut typed = self.config.typed_json();
        if let serde_json::Value::Object(m) = &mut typed {
            let held = serde_json::to_value(&self.held_out).expect("serialises");
            for (k, v) in held.as_object().expect("a map") {
                m.insert(k.clone(), v.clone());
            }
        }
        typed
    }

    /// Where the cell runs in its experiment's search: 0 for trials (and
    /// cells of experiments without `tune:`), r for rung r of successive
    /// halving, [`FINAL_PHASE`] for final runs. A cell of a later phase
    /// reads the results of the earlier ones.
    pub fn phase(&self) -> usize {
        let (role, rung) = match &self.tuning {
            None => return 0,
            Some(CellTuning::Trial(r)) => (r.role.as_str(), r.rung),
            Some(CellTuning::Pick(p)) => (p.record.role.as_str(), p.record.rung),
        };
        if role == "final" { FINAL_PHASE } else { rung }
    }

    /// Folder name: readable prefix + hash of the configuration.
    pub fn dir_name(&self) -> String {
        format!("{}-{}", self.experiment, self.id)
    }

    /// The label of axis `key`'s value (strings without quotes).
    pub fn axis_label(&self, key: &str) -> Option<String> {
        self.axes
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| match v {
                serde_json::Value::String(s) => s.clone(),
                other => other.to_string(),
            })
    }
}

/// A short, stable id: SHA-256 of the experiment, protocol and canonical config JSON.
pub fn cell_id(experiment: &str, protocol: &str, config: &serde_json::Value) -> String {
    let canonical = canonical_json(config);
    let mut h = Sha256::new();
    h.update(experiment.as_bytes());
    h.update([0]);
    h.update(protocol.as_bytes());
    h.update([0]);
    h.update(canonical.as_bytes());
    hex(&h.finalize()[..6])
}

pub(crate) use reusebench_core::shared::{canonical_json, hex};

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn id_ignores_key_order_but_not_values() {
        let a = json!({"seed": 1, "method": {"name": "sgd", "epochs": 2}});
        let b = json!({"method": {"epochs": 2, "name": "sgd"}, "seed": 1});
        let c = json!({"method": {"epochs": 3, "name": "sgd"}, "seed": 1});
        assert_eq!(cell_id("e", "continual", &a), cell_id("e", "continual", &b));
        assert_ne!(cell_id("e", "continual", &a), cell_id("e", "continual", &c));
        assert_ne!(cell_id("e", "continual", &a), cell_id("f", "continual", &a));
        assert_eq!(cell_id("e", "continual", &a).len(), 12);
    }
}
