//! A cell: one fully resolved configuration of one experiment, with a
//! deterministic id derived from that configuration.

use std::sync::Arc;

use sha2::{Digest, Sha256};

use crate::registry::CellConfig;

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
}

impl Cell {
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
    h.finalize()[..6]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// JSON with object keys sorted, so that key order in YAML does not change ids.
pub(crate) fn canonical_json(v: &serde_json::Value) -> String {
    match v {
        serde_json::Value::Object(m) => {
            let mut keys: Vec<&String> = m.keys().collect();
            keys.sort();
            let inner: Vec<String> = keys
                .iter()
                .map(|k| {
                    format!(
                        "{}:{}",
                        serde_json::to_string(k).unwrap(),
                        canonical_json(&m[*k])
                    )
                })
                .collect();
            format!("{{{}}}", inner.join(","))
        }
        serde_json::Value::Array(a) => {
            format!(
                "[{}]",
                a.iter().map(canonical_json).collect::<Vec<_>>().join(",")
            )
        }
        other => other.to_string(),
    }
}

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
