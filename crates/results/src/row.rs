//! Metric rows: what a protocol returns, and what the store keeps.

use serde::{Deserialize, Serialize};

use crate::coords::{Coord, Coords};
use crate::names;

/// One measured number and the coordinates that place it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MetricRow {
    pub metric: String,
    pub value: f64,
    #[serde(default, skip_serializing_if = "Coords::is_empty")]
    pub coords: Coords,
}

impl MetricRow {
    /// A value without coordinates (a summary of the cell).
    pub fn scalar(metric: &str, value: f64) -> Self {
        Self::at(metric, value, Coords::new())
    }

    /// An accuracy-matrix entry R[after_task][task].
    pub fn entry(metric: &str, after_task: usize, task: usize, value: f64) -> Self {
        Self::at(
            metric,
            value,
            Coords::new()
                .with(names::AFTER_TASK, after_task)
                .with(names::TASK, task),
        )
    }

    pub fn at(metric: &str, value: f64, coords: Coords) -> Self {
        Self {
            metric: metric.into(),
            value,
            coords,
        }
    }

    pub fn is_scalar(&self) -> bool {
        self.coords.is_empty()
    }
}

/// A metric row with the identity of the cell that produced it, as
/// `cells/<cell>/rows.json` holds it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(from = "RawStoredRow")]
pub struct StoredRow {
    pub cell: String,
    pub experiment: String,
    pub protocol: String,
    pub method: String,
    pub seed: u64,
    /// Every grid axis of the experiment: key -> this cell's value (a
    /// scalar as written in the grid, a mapping by its label).
    pub axes: serde_json::Map<String, serde_json::Value>,
    /// The split the cell was scored on: `test`, or `validation` (a
    /// `tune:` trial, or a cell with `split: validation`).
    pub split: String,
    pub metric: String,
    pub value: f64,
    #[serde(default, skip_serializing_if = "Coords::is_empty")]
    pub coords: Coords,
}

/// The split of rows written before rows carried one.
pub const TEST_SPLIT: &str = "test";

fn test_split() -> String {
    TEST_SPLIT.into()
}

impl StoredRow {
    /// The label of axis `key` ("" when the cell's experiment has no such axis).
    pub fn axis(&self, key: &str) -> String {
        match self.axes.get(key) {
            Some(serde_json::Value::String(s)) => s.clone(),
            Some(v) => v.to_string(),
            None => String::new(),
        }
    }

    pub fn is_scalar(&self) -> bool {
        self.coords.is_empty()
    }
}

/// What `rows.json` may hold: today's rows, or those of schema 1 whose
/// only coordinates were top-level `after_task` and `task` fields.
#[derive(Deserialize)]
struct RawStoredRow {
    cell: String,
    experiment: String,
    protocol: String,
    method: String,
    seed: u64,
    #[serde(default)]
    axes: serde_json::Map<String, serde_json::Value>,
    #[serde(default = "test_split")]
    split: String,
    metric: String,
    value: f64,
    #[serde(default)]
    coords: Coords,
    #[serde(default)]
    after_task: Option<usize>,
    #[serde(default)]
    task: Option<usize>,
}

impl From<RawStoredRow> for StoredRow {
    fn from(r: RawStoredRow) -> Self {
        let mut coords = Coords::new();
        for (name, v) in [(names::AFTER_TASK, r.after_task), (names::TASK, r.task)] {
            if let Some(v) = v {
                coords.set(name, Coord::from(v));
            }
        }
        for (k, v) in r.coords.iter() {
            coords.set(k, v.clone());
        }
        Self {
            cell: r.cell,
            experiment: r.experiment,
            protocol: r.protocol,
            method: r.method,
            seed: r.seed,
            axes: r.axes,
            split: r.split,
            metric: r.metric,
            value: r.value,
            coords,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schema_1_rows_load_with_their_matrix_coordinates() {
        let old = r#"{"cell":"c","experiment":"e","protocol":"continual","method":"sgd","seed":0,
            "axes":{"seed":"0"},"metric":"acc_class_il","value":50.0,"after_task":1,"task":0}"#;
        let row: StoredRow = serde_json::from_str(old).unwrap();
        assert_eq!(row.coords.index(names::AFTER_TASK), Some(1));
        assert_eq!(row.coords.index(names::TASK), Some(0));
        let again: StoredRow = serde_json::from_str(&serde_json::to_string(&row).unwrap()).unwrap();
        assert_eq!(again, row);
    }
}
