//! Runs a grid's cells in order: skips done ones, records failures (an
//! error or a panic) with their reason and goes on.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::Path;
use std::time::Instant;

use reusebench_core::protocols::{continual, pretrain};
use reusebench_core::{DeviceSpec, MetricRow, Progress};

use crate::cell::{Cell, ProtocolConfig};
use crate::error::RunnerError;
use crate::grid::Grid;
use crate::store::{self, CellStatus, State};

#[derive(Debug, Clone, Default)]
pub struct RunOptions {
    /// Rerun cells that are already done.
    pub force: bool,
}

#[derive(Debug, Clone, Default)]
pub struct RunSummary {
    pub done: usize,
    pub skipped: usize,
    pub failed: Vec<(String, String)>,
}

/// What the runner tells its caller (a terminal UI, a log).
pub trait GridObserver {
    fn cell_started(&self, index: usize, total: usize, cell: &Cell);
    fn cell_skipped(&self, index: usize, total: usize, cell: &Cell);
    fn cell_finished(&self, index: usize, total: usize, cell: &Cell, status: &CellStatus);
    /// Progress sink for the training inside a cell.
    fn progress(&self) -> &dyn Progress;
}

fn run_cell(
    cell: &Cell,
    device: DeviceSpec,
    progress: &dyn Progress,
) -> Result<Vec<MetricRow>, String> {
    let result = catch_unwind(AssertUnwindSafe(|| match &cell.config {
        ProtocolConfig::Pretrain(c) => pretrain::run(c, device, progress),
        ProtocolConfig::Continual(c) => continual::run(c, device, progress),
    }));
    match result {
        Ok(Ok(rows)) => {
            if let Some(bad) = rows.iter().find(|r| r.value.is_infinite()) {
                return Err(format!("metric {} is infinite", bad.metric));
            }
            Ok(rows)
        }
        Ok(Err(e)) => Err(e.to_string()),
        Err(panic) => {
            let msg = panic
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_else(|| "unknown panic".into());
            Err(format!("panicked: {msg}"))
        }
    }
}

/// Runs every cell of `grid` that is not done (all with `force`).
pub fn run_grid(
    grid: &Grid,
    options: &RunOptions,
    observer: &dyn GridObserver,
) -> Result<RunSummary, RunnerError> {
    let results: &Path = &grid.results;
    std::fs::create_dir_all(results).map_err(|e| RunnerError::io(results, e))?;
    store::write_json(
        &results.join("grid.json"),
        &serde_json::json!({
            "name": grid.name,
            "grid_file": grid.path,
            "axes": grid.axes.iter().map(|(e, a)| serde_json::json!({"experiment": e, "axes": a})).collect::<Vec<_>>(),
            // The report aggregates these cells only: folders left by an
            // earlier version of the grid are not averaged in.
            "cells": grid.cells.iter().map(|c| c.dir_name()).collect::<Vec<_>>(),
        }),
    )?;
    let total = grid.cells.len();
    let mut summary = RunSummary::default();
    for (index, cell) in grid.cells.iter().enumerate() {
        let dir = store::cell_dir(results, cell);
        if !options.force && store::is_done(&dir) {
            summary.skipped += 1;
            observer.cell_skipped(index, total, cell);
            continue;
        }
        observer.cell_started(index, total, cell);
        let mut status = CellStatus {
            state: State::Running,
            reason: None,
            experiment: cell.experiment.clone(),
            protocol: cell.protocol.as_str().into(),
            method: cell.config.method(),
            seed: cell.config.seed(),
            seconds: 0.0,
            device: grid.device.to_string(),
        };
        // A rerun starts clean: stale rows of an earlier attempt must not survive.
        let _ = std::fs::remove_file(dir.join("rows.json"));
        store::write_json(
            &dir.join("config.json"),
            &serde_json::json!({
                "experiment": cell.experiment,
                "protocol": cell.protocol.as_str(),
                "axes": cell.axes.iter().map(|(k, v)| (k.clone(), serde_json::Value::String(v.clone()))).collect::<serde_json::Map<_, _>>(),
                "config": cell.config_json,
            }),
        )?;
        store::write_json(&dir.join("status.json"), &status)?;
        let start = Instant::now();
        let outcome = run_cell(cell, grid.device, observer.progress());
        status.seconds = start.elapsed().as_secs_f64();
        match outcome {
            Ok(metrics) => {
                store::write_json(&dir.join("rows.json"), &store::result_rows(cell, metrics))?;
                status.state = State::Done;
                summary.done += 1;
            }
            Err(reason) => {
                status.state = State::Failed;
                status.reason = Some(reason.clone());
                summary.failed.push((cell.dir_name(), reason));
            }
        }
        store::write_json(&dir.join("status.json"), &status)?;
        observer.cell_finished(index, total, cell, &status);
    }
    Ok(summary)
}
