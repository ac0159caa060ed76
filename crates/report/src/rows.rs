//! Reading the results store and turning rows into a polars frame.

use std::collections::BTreeSet;
use std::path::Path;

use polars::prelude::*;
use serde::Deserialize;

use crate::error::ReportError;

/// A metric row as the runner stores it in `cells/<cell>/rows.json`.
#[derive(Debug, Clone, Deserialize)]
pub struct StoredRow {
    pub cell: String,
    pub experiment: String,
    pub protocol: String,
    pub method: String,
    pub seed: u64,
    #[serde(default)]
    pub axes: serde_json::Map<String, serde_json::Value>,
    pub metric: String,
    pub value: f64,
    #[serde(default)]
    pub after_task: Option<usize>,
    #[serde(default)]
    pub task: Option<usize>,
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
}

#[derive(Debug, Clone, Deserialize)]
struct StoredStatus {
    state: String,
    #[serde(default)]
    reason: Option<String>,
    experiment: String,
    method: String,
    seed: u64,
}

#[derive(Debug, Clone)]
pub struct FailedCell {
    pub cell: String,
    pub experiment: String,
    pub method: String,
    pub seed: u64,
    pub reason: String,
}

pub struct Loaded {
    pub rows: Vec<StoredRow>,
    pub failed: Vec<FailedCell>,
    pub cells_done: usize,
    /// Cell folders that the results' grid (grid.json) no longer lists.
    pub stale: Vec<String>,
    /// Axis keys that become their own columns (every axis but seed and method).
    pub axis_columns: Vec<String>,
}

/// Two settings of one method on a `method` axis (say `mas` with and without
/// some option the label does not show) must not be averaged together as if
/// they were seeds: when an experiment has several `method` axis values with
/// the same method name, each row's method becomes `name {axis value}`.
fn distinguish_method_variants(rows: &mut [StoredRow]) {
    use std::collections::{BTreeMap, BTreeSet};
    let mut variants: BTreeMap<(String, String), BTreeSet<String>> = BTreeMap::new();
    for r in rows.iter() {
        if let Some(v) = r.axes.get("method") {
            variants
                .entry((r.experiment.clone(), r.method.clone()))
                .or_default()
                .insert(v.to_string());
        }
    }
    for r in rows.iter_mut() {
        let key = (r.experiment.clone(), r.method.clone());
        if variants.get(&key).is_some_and(|v| v.len() > 1) {
            let value = match &r.axes["method"] {
                serde_json::Value::String(s) => s.clone(),
                other => other.to_string(),
            };
            r.method = format!("{} {value}", r.method);
        }
    }
}

/// The cells of the grid that last ran into `results` (grid.json), if it
/// says; older results folders list none, and then every cell counts.
fn current_cells(results: &Path) -> Option<std::collections::BTreeSet<String>> {
    let text = std::fs::read_to_string(results.join("grid.json")).ok()?;
    let doc: serde_json::Value = serde_json::from_str(&text).ok()?;
    Some(
        doc.get("cells")?
            .as_array()?
            .iter()
            .filter_map(|c| c.as_str().map(String::from))
            .collect(),
    )
}

/// Reads the cell folders under `results/cells` that belong to the current
/// grid, in name order.
pub fn load_results(results: &Path) -> Result<Loaded, ReportError> {
    let cells = results.join("cells");
    let mut dirs: Vec<_> = std::fs::read_dir(&cells)
        .map_err(|e| ReportError::io(&cells, e))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.is_dir())
        .collect();
    dirs.sort();
    let current = current_cells(results);
    let mut rows = Vec::new();
    let mut failed = Vec::new();
    let mut stale = Vec::new();
    let mut done = 0;
    for dir in dirs {
        let name = dir
            .file_name()
            .unwrap_or_default()
            .to_string_lossy()
            .to_string();
        if current.as_ref().is_some_and(|c| !c.contains(&name)) {
            stale.push(name);
            continue;
        }
        let status_path = dir.join("status.json");
        let Ok(text) = std::fs::read_to_string(&status_path) else {
            continue;
        };
        let status: StoredStatus = serde_json::from_str(&text).map_err(|e| ReportError::Parse {
            path: status_path.clone(),
            message: e.to_string(),
        })?;
        let cell = dir
            .file_name()
            .unwrap_or_default()
            .to_string_lossy()
            .to_string();
        match status.state.as_str() {
            "done" => {
                let rows_path = dir.join("rows.json");
                let text = std::fs::read_to_string(&rows_path)
                    .map_err(|e| ReportError::io(&rows_path, e))?;
                let mut cell_rows: Vec<StoredRow> =
                    serde_json::from_str(&text).map_err(|e| ReportError::Parse {
                        path: rows_path.clone(),
                        message: e.to_string(),
                    })?;
                rows.append(&mut cell_rows);
                done += 1;
            }
            "failed" => failed.push(FailedCell {
                cell,
                experiment: status.experiment,
                method: status.method,
                seed: status.seed,
                reason: status.reason.unwrap_or_default(),
            }),
            _ => {} // running or interrupted: not a result yet
        }
    }
    distinguish_method_variants(&mut rows);
    let axis_columns: BTreeSet<String> = rows
        .iter()
        .flat_map(|r| r.axes.keys().cloned())
        .filter(|k| k != "seed" && k != "method")
        .collect();
    Ok(Loaded {
        rows,
        failed,
        cells_done: done,
        stale,
        axis_columns: axis_columns.into_iter().collect(),
    })
}

/// One row per metric value; axis columns hold labels as strings.
pub fn to_frame(rows: &[StoredRow], axis_columns: &[String]) -> Result<DataFrame, ReportError> {
    let text = |f: &dyn Fn(&StoredRow) -> String| rows.iter().map(f).collect::<Vec<String>>();
    let mut columns = vec![
        Column::new("cell".into(), text(&|r| r.cell.clone())),
        Column::new("experiment".into(), text(&|r| r.experiment.clone())),
        Column::new("protocol".into(), text(&|r| r.protocol.clone())),
        Column::new("method".into(), text(&|r| r.method.clone())),
        Column::new(
            "seed".into(),
            rows.iter().map(|r| r.seed).collect::<Vec<u64>>(),
        ),
    ];
    for key in axis_columns {
        columns.push(Column::new(key.as_str().into(), text(&|r| r.axis(key))));
    }
    columns.push(Column::new("metric".into(), text(&|r| r.metric.clone())));
    columns.push(Column::new(
        "value".into(),
        rows.iter().map(|r| r.value).collect::<Vec<f64>>(),
    ));
    columns.push(Column::new(
        "after_task".into(),
        rows.iter()
            .map(|r| r.after_task.map(|v| v as u32))
            .collect::<Vec<Option<u32>>>(),
    ));
    columns.push(Column::new(
        "task".into(),
        rows.iter()
            .map(|r| r.task.map(|v| v as u32))
            .collect::<Vec<Option<u32>>>(),
    ));
    Ok(DataFrame::new(rows.len(), columns)?)
}
