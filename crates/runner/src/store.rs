//! The results store: one folder per cell under `RESULTS/cells/`, holding
//! `config.json`, `rows.json` and `status.json`. Every file is written to a
//! temporary name and renamed, and `status.json` is written last, so a cell
//! killed at any point is either done with all its rows or not done.

use std::path::{Path, PathBuf};

use reusebench_core::MetricRow;
use reusebench_results::{CellStatus, State, StoredRow};
use serde::Serialize;

use crate::cell::Cell;
use crate::error::RunnerError;

pub fn cell_dir(results: &Path, cell: &Cell) -> PathBuf {
    results.join("cells").join(cell.dir_name())
}

/// Writes `bytes` to `path` through a temporary file and a rename.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), RunnerError> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(|e| RunnerError::io(dir, e))?;
    }
    // The process's own temporary name: workers sharing a results folder
    // write `grid.json` at the same moment, and a shared name would let
    // one rename the other's file away.
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = path.with_file_name(format!(".{name}.{}.tmp", std::process::id()));
    std::fs::write(&tmp, bytes).map_err(|e| RunnerError::io(&tmp, e))?;
    std::fs::rename(&tmp, path).map_err(|e| RunnerError::io(path, e))
}

pub fn write_json<T: Serialize>(path: &Path, value: &T) -> Result<(), RunnerError> {
    let bytes = serde_json::to_vec_pretty(value).map_err(|e| RunnerError::Store(e.to_string()))?;
    write_atomic(path, &bytes)
}

pub fn read_status(dir: &Path) -> Option<CellStatus> {
    let text = std::fs::read_to_string(dir.join("status.json")).ok()?;
    serde_json::from_str(&text).ok()
}

/// Done cells have a done status and their rows.
pub fn is_done(dir: &Path) -> bool {
    read_status(dir).is_some_and(|s| s.state == State::Done) && dir.join("rows.json").is_file()
}

/// The cell's axes as the rows carry them.
pub fn axes_map(cell: &Cell) -> serde_json::Map<String, serde_json::Value> {
    cell.axes.iter().cloned().collect()
}

pub fn result_rows(cell: &Cell, metrics: Vec<MetricRow>) -> Vec<StoredRow> {
    let axes = axes_map(cell);
    let (method, seed) = (cell.config.method(), cell.config.seed());
    metrics
        .into_iter()
        .map(|m| StoredRow {
            cell: cell.id.clone(),
            experiment: cell.experiment.clone(),
            protocol: cell.protocol.clone(),
            method: method.clone(),
            seed,
            axes: axes.clone(),
            split: cell.held_out.split.name().to_string(),
            metric: m.metric,
            value: m.value,
            coords: m.coords,
        })
        .collect()
}
