//! Run-time selection for `tune:`: a rung or final cell waits for the
//! cells it ranks, reads their validation objective, and becomes the
//! configuration that ranks where it asks (the best, for a final run).
//! Only validation rows are read: trial cells have no test rows.

use std::time::Duration;

use reusebench_results::{State, StoredRow};
use serde_json::{Map, Value};

use crate::cell::{Cell, CellTuning, Pick};
use crate::claim;
use crate::grid::{Grid, prepare, set_path};
use crate::store;
use crate::tune::{TUNING_FILE, TuningRecord, mean_by_trial, ranked};

/// Where a cell stands before it can run.
pub(crate) enum PickState {
    /// Not a chosen cell: it runs as the grid says.
    Fixed,
    /// A cell it ranks is not finished; `live`: a worker is on it now.
    Wait { live: bool, why: String },
    /// Its configuration, chosen.
    Resolved(Box<Cell>),
    /// Nothing to choose from (every trial failed, no objective row).
    Failed(String),
}

pub(crate) fn pick_state(grid: &Grid, index: usize, timeout: Duration) -> PickState {
    let Some(CellTuning::Pick(pick)) = &grid.cells[index].tuning else {
        return PickState::Fixed;
    };
    for &i in &pick.from {
        let source = &grid.cells[i];
        let dir = store::cell_dir(&grid.results, source);
        let finished = store::read_status(&dir)
            .is_some_and(|s| s.state == State::Failed || store::is_done(&dir));
        if finished {
            continue;
        }
        let live = claim::read(&dir).is_some_and(|c| c.stale(timeout).is_none());
        return PickState::Wait {
            live,
            why: format!(
                "waits for trial cell {} (the search it selects from)",
                source.dir_name()
            ),
        };
    }
    match resolve(grid, index, pick) {
        Ok(cell) => PickState::Resolved(Box::new(cell)),
        Err(why) => PickState::Failed(why),
    }
}

/// The scored trials of `pick.from`: (trial index, objective) per done
/// cell, the values of each trial index, and the cells that failed.
type Scored = (
    Vec<(usize, f64)>,
    Vec<(usize, Map<String, Value>)>,
    Vec<String>,
);

fn scores(grid: &Grid, pick: &Pick) -> Result<Scored, String> {
    let objective = &pick.record.objective;
    let (mut scores, mut values, mut failed) = (Vec::new(), Vec::new(), Vec::new());
    for &i in &pick.from {
        let source = &grid.cells[i];
        let dir = store::cell_dir(&grid.results, source);
        if !store::is_done(&dir) {
            failed.push(source.dir_name());
            continue;
        }
        let read = |name: &str| {
            std::fs::read_to_string(dir.join(name))
                .map_err(|e| format!("{}: {e}", dir.join(name).display()))
        };
        let record: TuningRecord =
            serde_json::from_str(&read(TUNING_FILE)?).map_err(|e| e.to_string())?;
        let rows: Vec<StoredRow> =
            serde_json::from_str(&read("rows.json")?).map_err(|e| e.to_string())?;
        let Some(row) = rows
            .iter()
            .find(|r| r.metric == *objective && r.is_scalar())
        else {
            let mut have: Vec<&str> = rows
                .iter()
                .filter(|r| r.is_scalar())
                .map(|r| r.metric.as_str())
                .collect();
            have.dedup();
            return Err(format!(
                "the objective `{objective}` is not a metric of trial cell {} (tune.objective; it has {})",
                source.dir_name(),
                have.join(", ")
            ));
        };
        debug_assert_eq!(
            row.split, "validation",
            "trials are scored on validation only"
        );
        scores.push((record.trial, row.value));
        values.push((record.trial, record.values));
    }
    Ok((scores, values, failed))
}

fn resolve(grid: &Grid, index: usize, pick: &Pick) -> Result<Cell, String> {
    let (scores, values, failed) = scores(grid, pick)?;
    let means = mean_by_trial(&scores);
    let order = ranked(&means, pick.record.direction);
    let Some(&trial) = order.get(pick.rank) else {
        return Err(format!(
            "{} of the trial cells it selects from finished ({} failed: {}); none ranks #{}",
            order.len(),
            failed.len(),
            failed.join(", "),
            pick.rank
        ));
    };
    let chosen = values
        .into_iter()
        .find(|(t, _)| *t == trial)
        .map(|(_, v)| v)
        .expect("a scored trial has values");
    let placeholder = &grid.cells[index];
    let mut config = pick.template.clone();
    for (k, v) in &chosen {
        set_path(&mut config, k, v.clone());
    }
    let (typed, held_out) = prepare(
        &|c| placeholder.config.reparse(c),
        &config,
        &pick.results,
        &placeholder.experiment,
    )
    .map_err(|(k, m)| format!("the selected configuration is invalid at `{k}`: {m}"))?;
    let record = TuningRecord {
        trial,
        values: chosen,
        validation_score: (pick.record.role == "final").then(|| means[&trial]),
        failed_trials: failed,
        ..pick.record.clone()
    };
    let mut cell = placeholder.clone();
    cell.config = typed.into();
    cell.config_json = config;
    cell.held_out = held_out;
    cell.tuning = Some(CellTuning::Trial(Box::new(record)));
    Ok(cell)
}
