//! Runs a grid's cells in order: skips done ones, claims each before running
//! it (workers may share the results folder), records failures (an error or
//! a panic) with their reason and goes on.

use std::collections::HashMap;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use reusebench_core::cost::energy::{EnergyMeter, EnergySource, carbon_grams};
use reusebench_core::metrics::names;
use reusebench_core::resume::Checkpoints;
use reusebench_core::shared::SharedResults;
use reusebench_core::{DeviceSpec, MetricRow, Progress, RunEnv};
use reusebench_results::{CellStatus, SCHEMA_VERSION, State};

use crate::cell::{Cell, CellTuning};
use crate::claim;
use crate::error::RunnerError;
use crate::grid::Grid;
use crate::identity::{self, Digests, Identity};
use crate::live::{Live, tensorboard_dir};
use crate::select::{PickState, pick_state};
use crate::store;
use crate::tune::TUNING_FILE;

/// Which cells of a grid one worker takes.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum Selection {
    #[default]
    All,
    /// Cells whose position in the grid is `index` modulo `count`.
    Shard { index: usize, count: usize },
    /// Cells by id (`1cf6ce009556`) or folder name (`pretrain-1cf6ce009556`).
    Cells(Vec<String>),
}

impl std::str::FromStr for Selection {
    type Err = String;
    /// `I/N` (a shard).
    fn from_str(s: &str) -> Result<Self, String> {
        let (i, n) = s
            .split_once('/')
            .ok_or_else(|| format!("`{s}`: a shard is I/N, e.g. 0/4"))?;
        let parse = |v: &str| {
            v.trim()
                .parse::<usize>()
                .map_err(|_| format!("`{s}`: `{v}` is not a number"))
        };
        let (index, count) = (parse(i)?, parse(n)?);
        if count == 0 || index >= count {
            return Err(format!("`{s}`: need 0 <= I < N"));
        }
        Ok(Selection::Shard { index, count })
    }
}

#[derive(Debug, Clone)]
pub struct RunOptions {
    /// Rerun cells that are already done.
    pub force: bool,
    pub select: Selection,
    /// A claim whose heartbeat is older than this is abandoned (its worker
    /// died on another host) and may be taken over.
    pub claim_timeout: Duration,
    /// How often a cell waiting for another worker's producer looks again.
    pub wait_poll: Duration,
    /// Keep done cells that are stale (their config with defaults, an
    /// input or the build changed) instead of running them again; the
    /// report marks them.
    pub keep_stale: bool,
}

impl Default for RunOptions {
    fn default() -> Self {
        Self {
            force: false,
            select: Selection::All,
            claim_timeout: Duration::from_secs(600),
            wait_poll: Duration::from_secs(2),
            keep_stale: false,
        }
    }
}

#[derive(Debug, Clone, Default)]
pub struct RunSummary {
    pub done: usize,
    pub skipped: usize,
    /// (cell folder, reason) of every cell that failed.
    pub failed: Vec<(String, String)>,
    /// (cell folder, holder) of cells another live worker holds or just ran.
    pub elsewhere: Vec<(String, String)>,
    /// (cell folder, why) of stale claims this worker took over.
    pub took_over: Vec<(String, String)>,
    /// (cell folder, why) of done cells run again because they were stale.
    pub stale_rerun: Vec<(String, String)>,
    /// (cell folder, why) of stale cells kept (`keep_stale`).
    pub stale_kept: Vec<(String, String)>,
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
    /// Another live worker holds the cell (or finished it during this run).
    fn cell_elsewhere(&self, _index: usize, _total: usize, _cell: &Cell, _holder: &str) {}
    /// This worker took over a stale claim.
    fn cell_taken_over(&self, _index: usize, _total: usize, _cell: &Cell, _why: &str) {}
    /// Progress sink for the training inside a cell.
    fn progress(&self) -> &dyn Progress;
}

/// Runs one cell: its protocol's rows, then the curves of its training
/// stages. On failure, the error chain.
fn run_cell(
    cell: &Cell,
    device: DeviceSpec,
    progress: &dyn Progress,
    live: Option<Arc<Live>>,
    checkpoints: Option<Arc<Checkpoints>>,
    shared: SharedResults,
) -> Result<Vec<MetricRow>, Vec<String>> {
    let env = RunEnv::new(device, progress)
        .with_held_out(cell.held_out.clone())
        .with_shared(shared);
    if let Some(l) = &live {
        env.curves.set_live(l.clone());
    }
    if let Some(c) = checkpoints {
        env.curves.set_checkpoints(c);
    }
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
            // The curves went live as they were made; the protocol's own
            // rows go to TensorBoard now.
            if let Some(l) = &live {
                l.finish(&rows, 0);
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

/// The cells `select` names, in grid order.
pub fn selected(grid: &Grid, select: &Selection) -> Result<Vec<usize>, RunnerError> {
    Ok(match select {
        Selection::All => (0..grid.cells.len()).collect(),
        Selection::Shard { index, count } => (0..grid.cells.len())
            .filter(|i| i % count == *index)
            .collect(),
        Selection::Cells(names) => {
            let mut out = Vec::new();
            for name in names {
                let Some(i) = grid
                    .cells
                    .iter()
                    .position(|c| &c.id == name || &c.dir_name() == name)
                else {
                    return Err(RunnerError::Grid {
                        path: grid.path.clone(),
                        line: None,
                        message: format!(
                            "--cell {name}: no such cell in this grid (`reusebench validate` lists them)"
                        ),
                    });
                };
                if !out.contains(&i) {
                    out.push(i);
                }
            }
            out.sort_unstable();
            out
        }
    })
}

/// Whether a cell's inputs that other cells of the grid write are there.
enum Inputs {
    Ready,
    /// Not yet; `live`: a live worker is producing one now.
    Wait {
        live: bool,
        why: String,
    },
    /// Its producer failed.
    Failed(String),
}

fn inputs_ready(
    grid: &Grid,
    index: usize,
    producers: &HashMap<PathBuf, usize>,
    timeout: Duration,
) -> Inputs {
    let mut waiting: Option<Inputs> = None;
    for input in grid.cells[index].config.inputs() {
        let Some(&p) = producers.get(&input) else {
            continue;
        };
        if p == index {
            continue;
        }
        let producer = &grid.cells[p];
        let dir = store::cell_dir(&grid.results, producer);
        if store::is_done(&dir) {
            continue;
        }
        if let Some(found) = claim::read(&dir)
            && found.stale(timeout).is_none()
        {
            return Inputs::Wait {
                live: true,
                why: format!(
                    "waits for {} (cell {}, running on {})",
                    input.display(),
                    producer.dir_name(),
                    found.holder.describe()
                ),
            };
        }
        if let Some(status) = store::read_status(&dir)
            && status.state == State::Failed
        {
            return Inputs::Failed(format!(
                "needs {}, which cell {} failed to write: {}",
                input.display(),
                producer.dir_name(),
                status.reason.unwrap_or_default()
            ));
        }
        waiting = Some(Inputs::Wait {
            live: false,
            why: format!(
                "needs {}, which cell {} has not written (run it first, or the whole grid)",
                input.display(),
                producer.dir_name()
            ),
        });
    }
    waiting.unwrap_or(Inputs::Ready)
}

/// Runs every selected cell of `grid` that is not done (all with `force`),
/// claiming each first so that workers sharing the results folder run
/// each cell once between them. A cell whose input another cell writes
/// waits for it while a live worker runs that cell.
pub fn run_grid(
    grid: &Grid,
    options: &RunOptions,
    observer: &dyn GridObserver,
) -> Result<RunSummary, RunnerError> {
    let results: &Path = &grid.results;
    write_grid_file(grid)?;
    let producers: HashMap<PathBuf, usize> = grid
        .cells
        .iter()
        .enumerate()
        .flat_map(|(i, c)| c.config.outputs().into_iter().map(move |o| (o, i)))
        .collect();
    let total = grid.cells.len();
    let started = SystemTime::now();
    let mut summary = RunSummary::default();
    let digests = Digests::default();
    let mut pending = selected(grid, &options.select)?;
    while !pending.is_empty() {
        let mut progressed = false;
        let mut waiting: Vec<(usize, bool, String)> = Vec::new();
        for index in std::mem::take(&mut pending) {
            // A tuned cell chosen at run time waits for the trials it ranks.
            let (resolved, unresolvable) = match pick_state(grid, index, options.claim_timeout) {
                PickState::Fixed => (None, None),
                PickState::Wait { live, why } => {
                    waiting.push((index, live, why));
                    continue;
                }
                PickState::Resolved(cell) => (Some(*cell), None),
                PickState::Failed(why) => (None, Some(why)),
            };
            let cell = resolved.as_ref().unwrap_or(&grid.cells[index]);
            let dir = store::cell_dir(results, cell);
            if !options.force
                && store::is_done(&dir)
                && reused(cell, &dir, options, &digests, &mut summary)?
            {
                summary.skipped += 1;
                observer.cell_skipped(index, total, cell);
                progressed = true;
                continue;
            }
            let inputs = match unresolvable {
                Some(why) => Inputs::Failed(why),
                None => inputs_ready(grid, index, &producers, options.claim_timeout),
            };
            if let Inputs::Wait { live, why } = inputs {
                waiting.push((index, live, why));
                continue;
            }
            let claim = match claim::try_claim(&dir, options.claim_timeout)? {
                claim::Attempt::Held(found) => {
                    let holder = found.holder.describe();
                    observer.cell_elsewhere(index, total, cell, &holder);
                    summary.elsewhere.push((cell.dir_name(), holder));
                    progressed = true;
                    continue;
                }
                claim::Attempt::Claimed(claim, replaced) => {
                    if let Some((holder, why)) = replaced {
                        let why = format!("took over from {}: {why}", holder.describe());
                        observer.cell_taken_over(index, total, cell, &why);
                        summary.took_over.push((cell.dir_name(), why));
                    }
                    claim
                }
            };
            progressed = true;
            // Another worker may have finished it between our look and our claim.
            if !options.force && store::is_done(&dir) && staleness(cell, &dir, &digests).is_none() {
                summary.skipped += 1;
                observer.cell_skipped(index, total, cell);
                continue;
            }
            if failed_since(&dir, started) {
                let holder = store::read_status(&dir)
                    .and_then(|s| s.host)
                    .unwrap_or_else(|| "another worker".into());
                observer.cell_elsewhere(index, total, cell, &holder);
                summary
                    .elsewhere
                    .push((cell.dir_name(), format!("failed on {holder}")));
                continue;
            }
            let refused = match inputs {
                Inputs::Failed(why) => Some(vec![why]),
                _ => None,
            };
            execute(
                grid,
                (index, cell),
                &dir,
                refused,
                (observer, &digests),
                &mut summary,
            )?;
            drop(claim);
        }
        if waiting.is_empty() {
            break;
        }
        if !progressed {
            if waiting.iter().any(|(_, live, _)| *live) {
                std::thread::sleep(options.wait_poll);
            } else {
                record_unmet(grid, waiting, options, (observer, &digests), &mut summary)?;
                break;
            }
        }
        pending = waiting.into_iter().map(|(i, _, _)| i).collect();
    }
    Ok(summary)
}

/// Nobody is producing what the `waiting` cells need: records why as
/// their failure, runs nothing.
fn record_unmet(
    grid: &Grid,
    waiting: Vec<(usize, bool, String)>,
    options: &RunOptions,
    (observer, digests): (&dyn GridObserver, &Digests),
    summary: &mut RunSummary,
) -> Result<(), RunnerError> {
    for (index, _, why) in waiting {
        let cell = &grid.cells[index];
        let dir = store::cell_dir(&grid.results, cell);
        if let claim::Attempt::Claimed(claim, _) = claim::try_claim(&dir, options.claim_timeout)? {
            execute(
                grid,
                (index, cell),
                &dir,
                Some(vec![why]),
                (observer, digests),
                summary,
            )?;
            drop(claim);
        }
    }
    Ok(())
}

/// `grid.json`: what the report and `status` know of the grid (its name,
/// axes, baselines and current cells).
fn write_grid_file(grid: &Grid) -> Result<(), RunnerError> {
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
    )
}

/// Whether the done cell in `dir` is reused: yes when it is current, or
/// stale and kept (`keep_stale`, marked for the report); no when it is
/// stale and runs again (recorded in `summary`).
fn reused(
    cell: &Cell,
    dir: &Path,
    options: &RunOptions,
    digests: &Digests,
    summary: &mut RunSummary,
) -> Result<bool, RunnerError> {
    match staleness(cell, dir, digests) {
        Some(why) if !options.keep_stale => {
            summary.stale_rerun.push((cell.dir_name(), why));
            Ok(false)
        }
        Some(why) => {
            store::write_json(&dir.join(STALE_MARK), &why)?;
            summary.stale_kept.push((cell.dir_name(), why));
            Ok(true)
        }
        None => {
            // Current (again, if an input was restored): no mark.
            let _ = std::fs::remove_file(dir.join(STALE_MARK));
            Ok(true)
        }
    }
}

/// Where a kept stale cell says why it is stale (the report marks it).
pub const STALE_MARK: &str = "stale.json";

/// Why the done cell in `dir` no longer holds (its config with defaults,
/// an input or the build changed), or `None` when it does.
fn staleness(cell: &Cell, dir: &Path, digests: &Digests) -> Option<String> {
    let why = identity::stale_reasons(dir, &Identity::of(cell, digests));
    (!why.is_empty()).then(|| why.join("; "))
}

/// Whether the cell's status says failed, written after `since` (by a
/// worker that ran it during this run).
fn failed_since(dir: &Path, since: SystemTime) -> bool {
    store::read_status(dir).is_some_and(|s| s.state == State::Failed)
        && std::fs::metadata(dir.join("status.json"))
            .and_then(|m| m.modified())
            .is_ok_and(|t| t >= since)
}

/// The folder in a cell's folder that holds its checkpoints while it runs.
pub const CHECKPOINT_DIR: &str = "checkpoint";

/// The grid's values that cells share (`RESULTS/shared`).
pub const SHARED_DIR: &str = "shared";

/// The cell's checkpoints, kept from an earlier attempt only when that
/// attempt computed the same thing (config, inputs and build: the cell's
/// identity); `None` when the grid turns them off.
fn checkpoints_of(
    grid: &Grid,
    dir: &Path,
    identity: &Identity,
) -> Result<Option<Arc<Checkpoints>>, RunnerError> {
    let folder = dir.join(CHECKPOINT_DIR);
    let stamp = folder.join("identity.json");
    let same = std::fs::read(&stamp)
        .ok()
        .and_then(|b| serde_json::from_slice::<Identity>(&b).ok())
        .is_some_and(|old| &old == identity);
    if !same {
        let _ = std::fs::remove_dir_all(&folder);
    }
    if grid.checkpoint_every == 0 {
        return Ok(None);
    }
    std::fs::create_dir_all(&folder).map_err(|e| RunnerError::io(&folder, e))?;
    store::write_json(&stamp, identity)?;
    Ok(Some(Arc::new(Checkpoints::new(
        folder,
        grid.checkpoint_every,
    ))))
}

/// Runs a claimed cell (or records `refused` as its failure without
/// running it) and writes its files.
fn execute(
    grid: &Grid,
    (index, cell): (usize, &Cell),
    dir: &Path,
    refused: Option<Vec<String>>,
    (observer, digests): (&dyn GridObserver, &Digests),
    summary: &mut RunSummary,
) -> Result<(), RunnerError> {
    // What the cell is computed from, before it runs (it reads its inputs
    // as they are now).
    let identity = Identity::of(cell, digests);
    let total = grid.cells.len();
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
        host: Some(claim::hostname()),
        slurm_job: claim::slurm_job(),
    };
    // A rerun starts clean: stale rows of an earlier attempt must not survive.
    for old in ["rows.json", "identity.json", STALE_MARK, TUNING_FILE] {
        let _ = std::fs::remove_file(dir.join(old));
    }
    if let Some(CellTuning::Trial(record)) = &cell.tuning {
        store::write_json(&dir.join(TUNING_FILE), record)?;
    }
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
    let outcome = match refused {
        Some(chain) => Err(chain),
        None => {
            let tb = grid
                .tensorboard
                .then(|| tensorboard_dir(&grid.results, cell));
            let live = Live::start(dir, tb.as_deref())?;
            let checkpoints = checkpoints_of(grid, dir, &identity)?;
            run_cell(
                cell,
                grid.device,
                observer.progress(),
                Some(Arc::new(live)),
                checkpoints,
                SharedResults::new(grid.results.join(SHARED_DIR), identity.shared_context(cell)),
            )
        }
    };
    // Done or failed, the cell will not resume: its checkpoints go.
    let _ = std::fs::remove_dir_all(dir.join(CHECKPOINT_DIR));
    status.seconds = start.elapsed().as_secs_f64();
    match outcome {
        Ok(metrics) => {
            store::write_json(&dir.join("rows.json"), &store::result_rows(cell, metrics))?;
            store::write_json(&dir.join("identity.json"), &identity)?;
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
    Ok(())
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
