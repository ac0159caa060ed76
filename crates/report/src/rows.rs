//! Reading the results store and turning rows into a polars frame.

use std::collections::BTreeSet;
use std::path::Path;

use polars::prelude::*;
use reusebench_results::tuning::{TUNING_FILE, TuningRecord};
use reusebench_results::{CellStatus, Coord, State, StoredRow};

use crate::error::ReportError;

/// How to read a file of an older or foreign results folder that does not parse.
const RERUN: &str = "this results folder was written by another version of reusebench; \
                     rerun the grid (`reusebench run GRID --force`) to rewrite it";

#[derive(Debug, Clone)]
pub struct FailedCell {
    pub cell: String,
    pub experiment: String,
    pub method: String,
    /// What sets the cell apart in its experiment (`der++ buffer_size=8 seed=1`).
    pub label: String,
    pub seed: u64,
    pub reason: String,
}

pub struct Loaded {
    pub rows: Vec<StoredRow>,
    pub failed: Vec<FailedCell>,
    pub cells_done: usize,
    /// Cell folders that the results' grid (grid.json) no longer lists.
    pub not_in_grid: Vec<String>,
    /// (cell folder, why) of done cells kept though stale (`run
    /// --keep-stale`): their config, an input or the build changed since.
    pub kept_stale: Vec<(String, String)>,
    /// Axis keys that become their own columns (every axis but seed and method).
    pub axis_columns: Vec<String>,
    /// Coordinate names of the rows, in the order they first appear.
    pub coord_columns: Vec<String>,
    /// Experiment -> the baseline method label its grid names.
    pub baselines: std::collections::BTreeMap<String, String>,
    /// Cells of `tune:` searches: trials (scored on validation; their rows
    /// are not in `rows`) and the final runs of the selected configurations.
    pub tuned: Vec<TunedCell>,
}

/// A cell of a `tune:` search, as its `tuning.json` and rows describe it.
#[derive(Debug, Clone)]
pub struct TunedCell {
    pub cell: String,
    pub experiment: String,
    pub seed: u64,
    pub record: TuningRecord,
    /// The objective's value in the cell's own rows (validation for a
    /// trial, test for a final run).
    pub objective: Option<f64>,
}

impl TunedCell {
    pub fn is_trial(&self) -> bool {
        self.record.role == "trial"
    }
}

/// The cell's `tuning.json`, if it is part of a search.
fn read_tuning(dir: &Path) -> Result<Option<TuningRecord>, ReportError> {
    let path = dir.join(TUNING_FILE);
    let Ok(text) = std::fs::read_to_string(&path) else {
        return Ok(None);
    };
    serde_json::from_str(&text)
        .map(Some)
        .map_err(|e| ReportError::Parse {
            path,
            message: format!("{e}; {RERUN}"),
        })
}

/// The baselines grid.json names (none in older folders).
fn baselines(results: &Path) -> std::collections::BTreeMap<String, String> {
    let Some(doc) = std::fs::read_to_string(results.join("grid.json"))
        .ok()
        .and_then(|t| serde_json::from_str::<serde_json::Value>(&t).ok())
    else {
        return Default::default();
    };
    doc.get("baselines")
        .and_then(|b| b.as_object())
        .map(|m| {
            m.iter()
                .filter_map(|(e, b)| b.as_str().map(|b| (e.clone(), b.to_string())))
                .collect()
        })
        .unwrap_or_default()
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
            // The axis label starts with the method's YAML name
            // (`der++ buffer_size=8`): the method column keeps its own
            // label (`mas+lp`) and adds what tells the variants apart.
            let detail = match value.split_once(' ') {
                Some((_, rest)) if !value.starts_with('{') => rest.to_string(),
                _ => value,
            };
            r.method = format!("{} {detail}", r.method);
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
    let mut not_in_grid = Vec::new();
    let mut kept_stale = Vec::new();
    let mut tuned = Vec::new();
    let mut done = 0;
    for dir in dirs {
        let name = dir
            .file_name()
            .unwrap_or_default()
            .to_string_lossy()
            .to_string();
        if current.as_ref().is_some_and(|c| !c.contains(&name)) {
            not_in_grid.push(name);
            continue;
        }
        let status_path = dir.join("status.json");
        let Ok(text) = std::fs::read_to_string(&status_path) else {
            continue;
        };
        let status: CellStatus = serde_json::from_str(&text).map_err(|e| ReportError::Parse {
            path: status_path.clone(),
            message: format!("{e}; {RERUN}"),
        })?;
        let cell = dir
            .file_name()
            .unwrap_or_default()
            .to_string_lossy()
            .to_string();
        match status.state {
            State::Done => {
                let rows_path = dir.join("rows.json");
                let text = std::fs::read_to_string(&rows_path)
                    .map_err(|e| ReportError::io(&rows_path, e))?;
                let mut cell_rows: Vec<StoredRow> =
                    serde_json::from_str(&text).map_err(|e| ReportError::Parse {
                        path: rows_path.clone(),
                        message: format!("{e}; {RERUN}"),
                    })?;
                if let Some(record) = read_tuning(&dir)? {
                    let objective = cell_rows
                        .iter()
                        .find(|r| r.metric == record.objective && r.is_scalar())
                        .map(|r| r.value);
                    let trial = record.role == "trial";
                    tuned.push(TunedCell {
                        cell: cell.clone(),
                        experiment: status.experiment.clone(),
                        seed: status.seed,
                        record,
                        objective,
                    });
                    // Trials are scored on validation: the search, not a result.
                    if trial {
                        cell_rows.clear();
                    }
                }
                rows.append(&mut cell_rows);
                done += 1;
                // `run --keep-stale` leaves why the cell no longer holds.
                if let Ok(why) = std::fs::read_to_string(dir.join("stale.json")) {
                    let why: String = serde_json::from_str(&why).unwrap_or(why);
                    kept_stale.push((cell.clone(), why));
                }
            }
            State::Failed => failed.push(FailedCell {
                cell,
                experiment: status.experiment,
                method: status.method,
                label: status.label,
                seed: status.seed,
                reason: status.reason.unwrap_or_default(),
            }),
            State::Running => {} // running or interrupted: not a result yet
        }
    }
    distinguish_method_variants(&mut rows);
    let axis_columns: BTreeSet<String> = rows
        .iter()
        .flat_map(|r| r.axes.keys().cloned())
        .filter(|k| k != "seed" && k != "method")
        .collect();
    let mut coord_columns: Vec<String> = Vec::new();
    for r in &rows {
        for (k, _) in r.coords.iter() {
            if !coord_columns.iter().any(|c| c == k) {
                coord_columns.push(k.to_string());
            }
        }
    }
    Ok(Loaded {
        rows,
        failed,
        cells_done: done,
        not_in_grid,
        kept_stale,
        axis_columns: axis_columns.into_iter().collect(),
        coord_columns,
        baselines: baselines(results),
        tuned,
    })
}

/// The name of coordinate `name`'s column: itself, unless an axis or a
/// fixed column already has that name.
pub fn coord_column(name: &str, axis_columns: &[String]) -> String {
    const FIXED: [&str; 8] = [
        "cell",
        "experiment",
        "protocol",
        "method",
        "seed",
        "split",
        "metric",
        "value",
    ];
    if FIXED.contains(&name) || axis_columns.iter().any(|a| a == name) {
        format!("coord.{name}")
    } else {
        name.to_string()
    }
}

/// A column of JSON-ish values: integers, floats or (mixed) strings, with
/// nulls where a row has none.
fn typed_column(name: &str, values: Vec<Option<Coord>>) -> Column {
    let all = |f: &dyn Fn(&Coord) -> bool| values.iter().flatten().all(f);
    if all(&|c| matches!(c, Coord::Int(_))) {
        Column::new(
            name.into(),
            values
                .iter()
                .map(|v| v.as_ref().and_then(Coord::as_i64))
                .collect::<Vec<Option<i64>>>(),
        )
    } else if all(&|c| c.as_f64().is_some()) {
        Column::new(
            name.into(),
            values
                .iter()
                .map(|v| v.as_ref().and_then(Coord::as_f64))
                .collect::<Vec<Option<f64>>>(),
        )
    } else {
        Column::new(
            name.into(),
            values
                .iter()
                .map(|v| v.as_ref().map(|c| c.to_string()))
                .collect::<Vec<Option<String>>>(),
        )
    }
}

/// An axis value as a coordinate (numbers stay numbers).
fn axis_value(v: Option<&serde_json::Value>) -> Option<Coord> {
    match v? {
        serde_json::Value::Number(n) => Some(match n.as_i64() {
            Some(i) => Coord::Int(i),
            None => Coord::Float(n.as_f64().unwrap_or(f64::NAN)),
        }),
        serde_json::Value::String(s) => Some(Coord::Str(s.clone())),
        serde_json::Value::Null => None,
        other => Some(Coord::Str(other.to_string())),
    }
}

/// One row per metric value: the cell's identity, one column per grid axis
/// (typed: a λ axis is a number column), the metric and value, and one
/// column per coordinate (null where a row has none).
pub fn to_frame(
    rows: &[StoredRow],
    axis_columns: &[String],
    coord_columns: &[String],
) -> Result<DataFrame, ReportError> {
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
    // A grid with a `split` axis has the column already (the same values).
    if !axis_columns.iter().any(|a| a == "split") {
        columns.push(Column::new("split".into(), text(&|r| r.split.clone())));
    }
    for key in axis_columns {
        columns.push(typed_column(
            key,
            rows.iter().map(|r| axis_value(r.axes.get(key))).collect(),
        ));
    }
    columns.push(Column::new("metric".into(), text(&|r| r.metric.clone())));
    columns.push(Column::new(
        "value".into(),
        rows.iter().map(|r| r.value).collect::<Vec<f64>>(),
    ));
    for name in coord_columns {
        columns.push(typed_column(
            &coord_column(name, axis_columns),
            rows.iter().map(|r| r.coords.get(name).cloned()).collect(),
        ));
    }
    Ok(DataFrame::new(rows.len(), columns)?)
}
