//! Runs a grid's cells in order: skips done ones, records failures (an
//! error or a panic) with their reason and goes on.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::Path;
use std::time::Instant;

use reusebench_core::cost::energy::{EnergyMeter, EnergySource, carbon_grams};
use reusebench_core::metrics::names;
use reusebench_core::{DeviceSpec, MetricRow, Progress, RunEnv};
use reusebench_results::{CellStatus, SCHEMA_VERSION, State};

use crate::cell::Cell;
use crate::error::RunnerError;
use crate::grid::Grid;
use crate::store;

#[derive(Debug, Clone, Default)]
pub struct RunOptions {
    /// Rerun cells that are already done.
    pub force: bool,
}

#[derive(Debug, Clone, Default)]
pub struct RunSummary {
    pub done: usize,
    pub skipped: usize,
    /// (cell folder, reason) of every cell that failed.
    pub failed: Vec<(String, String)>,
}

/// Why a cell failed: the error and its sources, outermost first, each
/// message once (a message that ends with its source's text is cut there).
pub fn error_chain(error: &(dyn std::error::Error + 'static)) -> Vec<String> {
    let mut messages: Vec<String> = Vec::new();
    let mut current = Some(error);
    while let Some(e) = current {
        messages.push(e.to_string());
        current = e.source();
    }
    for i in 0..messages.len().saturating_sub(1) {
        let next = messages[i + 1].clone();
        let m = &mut messages[i];
        if let Some(head) = m.strip_suffix(&next) {
            *m = head.trim_end_matches([':', ' ']).to_string();
        }
    }
    messages.retain(|m| !m.is_empty());
    messages.dedup();
    messages
}

/// What the runner tells its caller (a terminal UI, a log).
pub trait GridObserver {
    fn cell_started(&self, index: usize, total: usize, cell: &Cell);
    fn cell_skipped(&self, index: usize, total: usize, cell: &Cell);
    fn cell_finished(&self, index: usize, total: usize, cell: &Cell, status: &CellStatus);
    /// Progress sink for the training inside a cell.
    fn progress(&self) -> &dyn Progress;
}

/// Runs one cell: its protocol's rows, then the curves of its training
/// stages. On failure, the error chain.
fn run_cell(
    cell: &Cell,
    device: DeviceSpec,
    progress: &dyn Progress,
) -> Result<Vec<MetricRow>, Vec<String>> {
    let env = RunEnv::new(device, progress);
    let meter = cell.energy.as_ref().map(|c| {
        (
            EnergyMeter::start(c.energy, &c.rapl_root, c.tdp_watts),
            c.grid_intensity,
        )
    });
    let result = catch_unwind(AssertUnwindSafe(|| cell.config.run(&env)));
    match result {
        Ok(Ok(mut rows)) => {
            if let Some(bad) = rows.iter().find(|r| r.value.is_infinite()) {
                return Err(vec![format!("metric {} is infinite", bad.metric)]);
            }
            rows.extend(env.curves.take());
            if let Some((meter, intensity)) = meter {
                let r = meter.stop();
                rows.push(MetricRow::scalar(names::CELL_ENERGY_JOULES, r.joules));
                if let Some(gpu) = r.gpu_joules {
                    rows.push(MetricRow::scalar(names::CELL_ENERGY_GPU_JOULES, gpu));
                }
                rows.push(MetricRow::scalar(
                    names::CELL_CARBON_GRAMS,
                    carbon_grams(r.joules, intensity),
                ));
                rows.push(MetricRow::scalar(names::CELL_CPU_SECONDS, r.cpu_seconds));
                rows.push(MetricRow::scalar(
                    names::CELL_ENERGY_FROM_RAPL,
                    f64::from(u8::from(r.source == EnergySource::Rapl)),
                ));
            }
            Ok(rows)
        }
        Ok(Err(e)) => Err(error_chain(&e)),
        Err(panic) => {
            let msg = panic
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_else(|| "unknown panic".into());
            Err(vec![format!("panicked: {msg}")])
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
            // The report's paired tests compare with these.
            "baselines": grid.baselines.iter().map(|(e, b)| (e.clone(), serde_json::Value::String(b.clone()))).collect::<serde_json::Map<_, _>>(),
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
            errors: Vec::new(),
            experiment: cell.experiment.clone(),
            protocol: cell.protocol.clone(),
            method: cell.config.method(),
            label: cell.label.clone(),
            seed: cell.config.seed(),
            seconds: 0.0,
            device: grid.device.to_string(),
            schema: SCHEMA_VERSION,
        };
        // A rerun starts clean: stale rows of an earlier attempt must not survive.
        let _ = std::fs::remove_file(dir.join("rows.json"));
        store::write_json(
            &dir.join("config.json"),
            &serde_json::json!({
                "experiment": cell.experiment,
                "protocol": cell.protocol,
                "label": cell.label,
                "axes": store::axes_map(cell),
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
            Err(chain) => {
                let reason = chain.join(": ");
                status.state = State::Failed;
                status.reason = Some(reason.clone());
                status.errors = chain;
                summary.failed.push((cell.dir_name(), reason));
            }
        }
        store::write_json(&dir.join("status.json"), &status)?;
        observer.cell_finished(index, total, cell, &status);
    }
    Ok(summary)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, thiserror::Error)]
    #[error("reading {path}: {source}")]
    struct Outer {
        path: String,
        #[source]
        source: std::io::Error,
    }

    #[test]
    fn an_error_chain_names_each_message_once() {
        let io = std::io::Error::new(std::io::ErrorKind::NotFound, "No such file or directory");
        let e = Outer {
            path: "/x".into(),
            source: io,
        };
        assert_eq!(
            error_chain(&e),
            vec!["reading /x".to_string(), "No such file or directory".into()]
        );
    }
}
