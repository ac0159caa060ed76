//! A cell: one fully resolved configuration of one experiment, with a
//! deterministic id derived from that configuration.

use std::path::PathBuf;

use reusebench_core::protocols::continual::ContinualConfig;
use reusebench_core::protocols::pretrain::PretrainConfig;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// The protocols a grid experiment can name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Protocol {
    Pretrain,
    Continual,
}

impl Protocol {
    pub fn as_str(self) -> &'static str {
        match self {
            Protocol::Pretrain => "pretrain",
            Protocol::Continual => "continual",
        }
    }
}

/// A typed, validated cell configuration.
#[derive(Debug, Clone, PartialEq)]
pub enum ProtocolConfig {
    Pretrain(Box<PretrainConfig>),
    Continual(Box<ContinualConfig>),
}

impl ProtocolConfig {
    pub fn seed(&self) -> u64 {
        match self {
            ProtocolConfig::Pretrain(c) => c.seed,
            ProtocolConfig::Continual(c) => c.seed,
        }
    }

    /// The method column of result rows.
    pub fn method(&self) -> String {
        match self {
            ProtocolConfig::Pretrain(_) => "pretrain".into(),
            ProtocolConfig::Continual(c) => c.method.label(),
        }
    }

    /// Files the cell reads.
    pub fn inputs(&self) -> Vec<PathBuf> {
        let (data, backbone) = match self {
            ProtocolConfig::Pretrain(c) => (&c.data, &c.backbone),
            ProtocolConfig::Continual(c) => (&c.data, &c.backbone),
        };
        let mut v = data.required_paths();
        v.extend(backbone.checkpoint.clone());
        v.extend(backbone.weights.clone());
        v
    }

    /// Files the cell writes that later cells may read.
    pub fn outputs(&self) -> Vec<PathBuf> {
        match self {
            ProtocolConfig::Pretrain(c) => vec![c.output.clone()],
            ProtocolConfig::Continual(_) => vec![],
        }
    }
}

#[derive(Debug, Clone)]
pub struct Cell {
    pub id: String,
    pub experiment: String,
    pub protocol: Protocol,
    pub config: ProtocolConfig,
    /// The resolved configuration as JSON (what the id hashes, placeholders kept).
    pub config_json: serde_json::Value,
    /// Axis key -> label of this cell's value, in axis order.
    pub axes: Vec<(String, String)>,
}

impl Cell {
    /// Folder name: readable prefix + hash of the configuration.
    pub fn dir_name(&self) -> String {
        format!("{}-{}", self.experiment, self.id)
    }
}

/// A short, stable id: SHA-256 of the experiment, protocol and canonical config JSON.
pub fn cell_id(experiment: &str, protocol: Protocol, config: &serde_json::Value) -> String {
    let canonical = canonical_json(config);
    let mut h = Sha256::new();
    h.update(experiment.as_bytes());
    h.update([0]);
    h.update(protocol.as_str().as_bytes());
    h.update([0]);
    h.update(canonical.as_bytes());
    h.finalize()[..6]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// JSON with object keys sorted, so that key order in YAML does not change ids.
fn canonical_json(v: &serde_json::Value) -> String {
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
        assert_eq!(
            cell_id("e", Protocol::Continual, &a),
            cell_id("e", Protocol::Continual, &b)
        );
        assert_ne!(
            cell_id("e", Protocol::Continual, &a),
            cell_id("e", Protocol::Continual, &c)
        );
        assert_ne!(
            cell_id("e", Protocol::Continual, &a),
            cell_id("f", Protocol::Continual, &a)
        );
        assert_eq!(cell_id("e", Protocol::Continual, &a).len(), 12);
    }
}
