//! Grid files: parsing, `--set` overrides, expansion into cells and
//! validation of every cell before anything runs.
//!
//! ```yaml
//! name: quickstart
//! results: results/quickstart      # relative to the working directory
//! device: cpu                      # optional; --device overrides
//! experiments:
//!   - name: pretrain
//!     protocol: pretrain
//!     base: { ... }                # the protocol's config
//!     axes:                        # optional: key path -> values (cartesian product)
//!       seed: [0]
//! ```
//!
//! Strings in a config may use `{results}` (the results folder), `{seed}`
//! and `{experiment}`; they are filled in per cell.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use reusebench_core::cost::CostConfig;
use reusebench_core::{Checks, CoreError, DeviceSpec, HeldOut};
use reusebench_data::Split;
use serde::Deserialize;
use serde_json::{Map, Value};

use crate::cell::{Cell, cell_id};
use crate::error::RunnerError;
use crate::locate::{item_line, line_of};
use crate::registry::{CellConfig, ProtocolEntry, Registry};
use crate::tune::RawTune;

mod tuned;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawGrid {
    name: String,
    results: PathBuf,
    #[serde(default)]
    device: Option<String>,
    /// Where rows go while cells run, besides their files.
    #[serde(default)]
    tracking: Tracking,
    /// Epochs between a cell's checkpoints inside a training stage (each
    /// stage's end is one too); 0 turns checkpoints inside cells off.
    #[serde(default = "default_checkpoint_every")]
    checkpoint_every: usize,
    experiments: Vec<RawExperiment>,
}

fn default_checkpoint_every() -> usize {
    1
}

/// The grid's `tracking:` block.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct Tracking {
    /// TensorBoard event files under `RESULTS/tb/` (`run --tensorboard` too).
    #[serde(default)]
    tensorboard: bool,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawExperiment {
    name: String,
    protocol: String,
    base: Map<String, Value>,
    #[serde(default)]
    axes: Map<String, Value>,
    /// The method label the report compares every other method with, on
    /// the same seeds (a paired test).
    #[serde(default)]
    baseline: Option<String>,
    /// Meter every cell of the experiment: energy, carbon and CPU time of
    /// the whole cell, whatever its protocol (rows `cell_*`).
    #[serde(default)]
    energy: Option<CostConfig>,
    /// Hyperparameters searched on the validation split ([`crate::tune`]).
    #[serde(default)]
    tune: Option<RawTune>,
}

/// Where the grid's placeholders point: `{results}` (the results folder)
/// and `{data}` (the datasets folder: `--data-root`, else the
/// `REUSEBENCH_DATA` environment variable, else `datasets`).
#[derive(Debug, Clone, PartialEq)]
pub struct Places {
    pub results: PathBuf,
    pub data: PathBuf,
}

impl Places {
    /// The datasets folder when the command line names none.
    pub fn default_data() -> PathBuf {
        std::env::var_os("REUSEBENCH_DATA")
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from("datasets"))
    }
}

/// A parsed grid, expanded into cells in execution order.
#[derive(Debug, Clone)]
pub struct Grid {
    pub path: PathBuf,
    pub name: String,
    pub results: PathBuf,
    pub device: DeviceSpec,
    pub cells: Vec<Cell>,
    /// Axis keys of each experiment, in order (for reports).
    pub axes: Vec<(String, Vec<String>)>,
    /// Each experiment's baseline method label, where the grid names one.
    pub baselines: Vec<(String, String)>,
    /// Write TensorBoard event files (`tracking: { tensorboard: true }`).
    pub tensorboard: bool,
    /// Epochs between checkpoints inside a cell's training stages (and at
    /// each stage's end); 0: none, a killed cell starts again.
    pub checkpoint_every: usize,
    /// Where `{data}` pointed.
    pub data_root: PathBuf,
}

/// Reads, overrides, expands and validates a grid. `overrides` are
/// `[experiment:]key.path=value` strings; `device` replaces the file's.
pub fn load_grid(
    registry: &Registry,
    path: &Path,
    overrides: &[String],
    device: Option<&str>,
) -> Result<Grid, RunnerError> {
    load_grid_with_data(registry, path, overrides, device, None)
}

/// [`load_grid`] with `{data}` at `data_root` (default: [`Places::default_data`]).
pub fn load_grid_with_data(
    registry: &Registry,
    path: &Path,
    overrides: &[String],
    device: Option<&str>,
    data_root: Option<&Path>,
) -> Result<Grid, RunnerError> {
    let text = std::fs::read_to_string(path).map_err(|e| RunnerError::io(path, e))?;
    parse_grid_in(registry, path, &text, (overrides, device), data_root)
}

fn grid_err(path: &Path, line: Option<u64>, message: impl Into<String>) -> RunnerError {
    RunnerError::Grid {
        path: path.to_path_buf(),
        line,
        message: message.into(),
    }
}

/// The grid file being parsed: where its errors point.
struct Source<'a> {
    path: &'a Path,
    text: &'a str,
}

impl Source<'_> {
    fn err(&self, line: Option<u64>, message: impl Into<String>) -> RunnerError {
        grid_err(self.path, line, message)
    }

    /// `:LINE` of `segments` under the experiment starting at `exp_line`,
    /// or nothing where the file does not say.
    fn at(&self, segments: &[String], exp_line: usize) -> String {
        line_of(self.text, segments, exp_line)
            .map(|l| format!(":{l}"))
            .unwrap_or_default()
    }

    /// `FILE:LINE: experiment `E`, key `K`: MESSAGE`.
    fn key_problem(&self, at: &str, experiment: &str, key: &str, message: &str) -> String {
        format!(
            "{}{at}: experiment `{experiment}`, key `{key}`: {message}",
            self.path.display()
        )
    }
}

/// Problems found while expanding a grid, each reported once.
#[derive(Default)]
struct Problems(Vec<String>);

impl Problems {
    fn add(&mut self, msg: String) {
        if !self.0.contains(&msg) {
            self.0.push(msg);
        }
    }
}

/// What expanding the experiments carries from one to the next.
#[derive(Default)]
struct Expansion {
    cells: Vec<Cell>,
    problems: Problems,
    axes: Vec<(String, Vec<String>)>,
    baselines: Vec<(String, String)>,
    /// Files earlier experiments write: later cells may read them before
    /// they exist, and their checkpoint headers are checked at run time.
    produced: HashSet<PathBuf>,
    /// An experiment whose own config is broken cannot say what it
    /// writes: inputs of later experiments are then not reported missing.
    broken_before: bool,
}

pub fn parse_grid(
    registry: &Registry,
    path: &Path,
    text: &str,
    overrides: &[String],
    device: Option<&str>,
) -> Result<Grid, RunnerError> {
    parse_grid_in(registry, path, text, (overrides, device), None)
}

/// [`parse_grid`] with `{data}` at `data_root` (default: [`Places::default_data`]).
pub fn parse_grid_in(
    registry: &Registry,
    path: &Path,
    text: &str,
    (overrides, device): (&[String], Option<&str>),
    data_root: Option<&Path>,
) -> Result<Grid, RunnerError> {
    let src = Source { path, text };
    let mut raw: RawGrid = serde_saphyr::from_str(text).map_err(|e| {
        let line = e.location().map(|l| l.line());
        src.err(line, e.without_snippet().to_string())
    })?;
    let device = grid_device(&src, &raw, device)?;
    check_experiments(&src, registry, &raw)?;
    for o in overrides {
        apply_override(&mut raw.experiments, o)?;
    }
    let places = Places {
        results: raw.results.clone(),
        data: data_root.map_or_else(Places::default_data, Path::to_path_buf),
    };
    let mut x = Expansion::default();
    for (ei, exp) in raw.experiments.iter().enumerate() {
        let problems_before = x.problems.0.len();
        expand_experiment(&src, registry, &places, ei, exp, &mut x)?;
        x.broken_before |= x.problems.0.len() > problems_before;
    }
    let mut seen_ids = HashSet::new();
    for cell in &x.cells {
        if !seen_ids.insert(cell.id.clone()) {
            x.problems.0.push(format!(
                "{}: experiment `{}`: two cells have the same configuration (duplicate axis values?)",
                path.display(),
                cell.experiment
            ));
        }
    }
    if !x.problems.0.is_empty() {
        return Err(RunnerError::Invalid {
            path: path.to_path_buf(),
            problems: x.problems.0,
        });
    }
    Ok(Grid {
        path: path.to_path_buf(),
        name: raw.name,
        results: raw.results,
        device,
        cells: x.cells,
        axes: x.axes,
        baselines: x.baselines,
        tensorboard: raw.tracking.tensorboard,
        checkpoint_every: raw.checkpoint_every,
        data_root: places.data,
    })
}

/// `--device`, else the file's `device:`, else the CPU; one that cannot
/// run here is an error at the file's `device:` line (unless --device
/// chose it).
fn grid_device(
    src: &Source,
    raw: &RawGrid,
    device: Option<&str>,
) -> Result<DeviceSpec, RunnerError> {
    let device_line = match device {
        Some(_) => None,
        None => line_of(src.text, &["device".into()], 1),
    };
    let device_str = device
        .map(String::from)
        .or(raw.device.clone())
        .unwrap_or_else(|| "cpu".into());
    let device: DeviceSpec = device_str
        .parse()
        .map_err(|e: CoreError| src.err(device_line, e.to_string()))?;
    device
        .check_available()
        .map_err(|e| src.err(device_line, e.to_string()))?;
    Ok(device)
}

/// Every experiment names a known protocol and a name of its own.
fn check_experiments(src: &Source, registry: &Registry, raw: &RawGrid) -> Result<(), RunnerError> {
    let mut names = HashSet::new();
    for (i, e) in raw.experiments.iter().enumerate() {
        if registry.get(&e.protocol).is_none() {
            let line = line_of(src.text, &["protocol".into()], experiment_line(src.text, i));
            return Err(src.err(
                line,
                format!(
                    "experiment `{}`: unknown protocol `{}`; this build knows {}",
                    e.name,
                    e.protocol,
                    registry.names().join(", ")
                ),
            ));
        }
        if !names.insert(e.name.clone()) {
            let line = line_of(
                src.text,
                &["experiments".into(), i.to_string(), "name".into()],
                1,
            );
            return Err(src.err(line, format!("experiment name `{}` is used twice", e.name)));
        }
    }
    Ok(())
}

/// The experiment's cells (the cartesian product of its axes), each parsed
/// and validated; then its energy and baseline settings.
fn expand_experiment(
    src: &Source,
    registry: &Registry,
    results: &Places,
    ei: usize,
    exp: &RawExperiment,
    x: &mut Expansion,
) -> Result<(), RunnerError> {
    let exp_line = experiment_line(src.text, ei);
    let protocol = registry.get(&exp.protocol).expect("checked above");
    let axes = experiment_axes(src, exp, exp_line)?;
    x.axes.push((
        exp.name.clone(),
        axes.iter().map(|(k, _)| k.clone()).collect(),
    ));
    let labels: Vec<Vec<Value>> = axes.iter().map(|(_, vs)| axis_labels(vs)).collect();
    let start = x.cells.len();
    if let Some(tune) = &exp.tune {
        let site = tuned::Site {
            src,
            exp,
            exp_line,
            protocol,
            results,
        };
        tuned::expand(&site, tune, &axes, &labels, x);
    }
    let combos = match exp.tune {
        Some(_) => Vec::new(),
        None => cartesian(&axes.iter().map(|(_, v)| v.len()).collect::<Vec<_>>()),
    };
    for combo in combos {
        let mut config = Value::Object(exp.base.clone());
        for (ai, &vi) in combo.iter().enumerate() {
            set_path(&mut config, &axes[ai].0, axes[ai].1[vi].clone());
        }
        let cell = CellSite {
            src,
            exp,
            exp_line,
            axes: &axes,
            combo: &combo,
        };
        if let Some((typed, held_out)) = cell.check(protocol, results, &config, x) {
            x.cells.push(Cell {
                id: cell_id(&exp.name, &exp.protocol, &config),
                experiment: exp.name.clone(),
                protocol: exp.protocol.clone(),
                config: Arc::from(typed),
                config_json: config,
                held_out,
                tuning: None,
                axes: axes
                    .iter()
                    .zip(&labels)
                    .zip(&combo)
                    .map(|(((k, _), l), &vi)| (k.clone(), l[vi].clone()))
                    .collect(),
                label: String::new(),
                energy: exp.energy.clone(),
            });
        }
    }
    if exp.tune.is_none() {
        for cell in &mut x.cells[start..] {
            cell.label = cell_label(&cell.axes, &axes);
        }
    }
    let outputs: Vec<PathBuf> = x.cells[start..]
        .iter()
        .flat_map(|c| c.config.outputs())
        .collect();
    x.produced.extend(outputs);
    check_energy(src, exp, exp_line, &mut x.problems);
    if let Some(baseline) = &exp.baseline {
        check_baseline(
            src,
            exp,
            exp_line,
            baseline,
            &x.cells[start..],
            &mut x.problems,
        );
        x.baselines.push((exp.name.clone(), baseline.clone()));
    }
    Ok(())
}

/// The experiment's axes as (key, values); each must be a non-empty list.
fn experiment_axes(
    src: &Source,
    exp: &RawExperiment,
    exp_line: usize,
) -> Result<Vec<(String, Vec<Value>)>, RunnerError> {
    exp.axes
        .iter()
        .map(|(k, v)| match v {
            Value::Array(values) if !values.is_empty() => Ok((k.clone(), values.clone())),
            _ => {
                let line = line_of(src.text, &["axes".into(), k.clone()], exp_line);
                Err(src.err(
                    line,
                    format!(
                        "experiment `{}`: axis `{k}` must be a non-empty list of values",
                        exp.name
                    ),
                ))
            }
        })
        .collect()
}

/// One combination of an experiment's axis values: where its keys are
/// written in the file.
struct CellSite<'a> {
    src: &'a Source<'a>,
    exp: &'a RawExperiment,
    exp_line: usize,
    axes: &'a [(String, Vec<Value>)],
    combo: &'a [usize],
}

impl CellSite<'_> {
    /// `:LINE` of a key of this cell: at this cell's entry of the axis that
    /// sets it, otherwise in the base.
    fn locate(&self, key_path: &str) -> String {
        let axis = self
            .axes
            .iter()
            .enumerate()
            .filter(|(_, (k, _))| key_path == k.as_str() || key_path.starts_with(&format!("{k}.")))
            .max_by_key(|(_, (k, _))| k.len());
        let text = self.src.text;
        let line = match axis {
            Some((ai, (k, _))) => line_of(text, &["axes".into(), k.clone()], self.exp_line)
                .map(|l| item_line(text, l, self.combo[ai])),
            None => {
                let segments: Vec<String> = std::iter::once("base".to_string())
                    .chain(key_path.split('.').map(String::from))
                    .collect();
                line_of(text, &segments, self.exp_line)
            }
        };
        line.map(|l| format!(":{l}")).unwrap_or_default()
    }

    /// The cell's typed config, or `None` with its problems recorded: keys
    /// and types, the protocol's own checks, and inputs that exist or an
    /// earlier experiment writes.
    fn check(
        &self,
        protocol: &dyn ProtocolEntry,
        results: &Places,
        config: &Value,
        x: &mut Expansion,
    ) -> Option<(Box<dyn CellConfig>, HeldOut)> {
        self.check_located(protocol, results, config, x, &|key| self.locate(key))
    }

    /// [`CellSite::check`], with `locate` saying where a key is written.
    fn check_located(
        &self,
        protocol: &dyn ProtocolEntry,
        results: &Places,
        config: &Value,
        x: &mut Expansion,
        locate: &dyn Fn(&str) -> String,
    ) -> Option<(Box<dyn CellConfig>, HeldOut)> {
        let (src, name) = (self.src, &self.exp.name);
        let (typed, held_out) = match prepare(&|c| protocol.parse(c), config, results, name) {
            Ok(t) => t,
            Err((key_path, message)) => {
                let at = locate(&key_path);
                x.problems
                    .add(src.key_problem(&at, name, &key_path, &message));
                return None;
            }
        };
        let is_produced = |p: &Path| x.produced.contains(p);
        let checks = Checks {
            produced: &is_produced,
        };
        if let Err(e) = typed.validate(&checks) {
            let msg = match &e {
                CoreError::Config { key, message } if !key.is_empty() => {
                    src.key_problem(&locate(key), name, key, message)
                }
                _ => format!("{}: experiment `{name}`: {e}", src.path.display()),
            };
            x.problems.add(msg);
            return None;
        }
        if !x.broken_before {
            for input in typed.inputs() {
                if !input.exists() && !x.produced.contains(&input) {
                    x.problems.add(format!(
                        "{}: experiment `{name}`: file {} does not exist (and no earlier experiment writes it)",
                        src.path.display(),
                        input.display()
                    ));
                }
            }
        }
        Some((typed, held_out))
    }
}

/// A protocol's config parser: the typed config, or (key path, message).
pub(crate) type ParseConfig<'a> =
    dyn Fn(&Value) -> Result<Box<dyn CellConfig>, (String, String)> + 'a;

/// A cell's typed config from its grid JSON: placeholders filled, the
/// held-out keys (`validation`, `split`) taken out for the runner, the
/// rest parsed by the protocol (`parse`). Errors as (key path, message).
pub(crate) fn prepare(
    parse: &ParseConfig<'_>,
    config: &Value,
    results: &Places,
    experiment: &str,
) -> Result<(Box<dyn CellConfig>, HeldOut), (String, String)> {
    let seed_label = config
        .get("seed")
        .map(|s| s.to_string())
        .unwrap_or_default();
    let mut resolved = fill_placeholders(config, results, &seed_label, experiment);
    let mut held = Map::new();
    if let Value::Object(m) = &mut resolved {
        for key in ["validation", "split"] {
            if let Some(v) = m.remove(key) {
                held.insert(key.into(), v);
            }
        }
    }
    let held_out: HeldOut = serde_path_to_error::deserialize(Value::Object(held)).map_err(|e| {
        let p = e.path().to_string();
        (p, e.into_inner().to_string())
    })?;
    held_out
        .validation
        .check()
        .map_err(|(k, m)| (format!("validation.{k}"), m))?;
    if held_out.split == Split::Validation && held_out.validation.is_empty() {
        return Err((
            "split".into(),
            "a cell scored on `validation` needs a validation split (validation.fraction or per_class is 0)".into(),
        ));
    }
    Ok((parse(&resolved)?, held_out))
}

fn check_energy(src: &Source, exp: &RawExperiment, exp_line: usize, problems: &mut Problems) {
    if let Some(Err(e)) = exp.energy.as_ref().map(|c| c.validate("energy")) {
        let (key, message) = match &e {
            CoreError::Config { key, message } => (key.clone(), message.clone()),
            other => ("energy".into(), other.to_string()),
        };
        let segments: Vec<String> = key.split('.').map(String::from).collect();
        let at = src.at(&segments, exp_line);
        problems.add(src.key_problem(&at, &exp.name, &key, &message));
    }
}

/// The baseline names a method some cell of the experiment runs.
fn check_baseline(
    src: &Source,
    exp: &RawExperiment,
    exp_line: usize,
    baseline: &str,
    cells: &[Cell],
    problems: &mut Problems,
) {
    let labels: Vec<String> = cells.iter().map(|c| c.config.method()).collect();
    if !labels.is_empty() && !labels.iter().any(|l| l == baseline) {
        let at = src.at(&["baseline".into()], exp_line);
        let mut known = labels.clone();
        known.dedup();
        let message = format!(
            "no cell runs method `{baseline}` (methods here: {})",
            known.join(", ")
        );
        problems.add(src.key_problem(&at, &exp.name, "baseline", &message));
    }
}

/// 1-based line where experiment `index` starts: the `index`-th item of
/// the top-level `experiments:` list (`line_of` skips list indices, so it
/// cannot tell the experiments apart).
fn experiment_line(text: &str, index: usize) -> usize {
    let lines: Vec<&str> = text.lines().collect();
    let Some(list) = lines.iter().position(|l| l.starts_with("experiments:")) else {
        return 1;
    };
    let mut item_indent = None;
    let mut seen = 0;
    for (i, line) in lines.iter().enumerate().skip(list + 1) {
        let trimmed = line.trim_start();
        if trimmed.is_empty() || trimmed.starts_with('#') {
            continue;
        }
        let indent = line.len() - trimmed.len();
        if indent == 0 {
            break; // the next top-level key
        }
        if trimmed.starts_with("- ") && item_indent.is_none_or(|d| d == indent) {
            item_indent = Some(indent);
            if seen == index {
                return i + 1;
            }
            seen += 1;
        }
    }
    1
}

/// All index combinations, the last axis varying fastest.
fn cartesian(sizes: &[usize]) -> Vec<Vec<usize>> {
    let mut out = vec![vec![]];
    for &n in sizes {
        out = out
            .into_iter()
            .flat_map(|prefix| {
                (0..n).map(move |i| {
                    let mut p = prefix.clone();
                    p.push(i);
                    p
                })
            })
            .collect();
    }
    out
}

/// The values of axis keys as cells and rows carry them: scalars as
/// written; a mapping by its `name` plus the fields that tell it apart from
/// the axis's other values of that name (`der++ buffer_size=8`), as a string.
fn axis_labels(values: &[Value]) -> Vec<Value> {
    let scalar = |v: &Value| match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    let names: Vec<Option<String>> = values.iter().map(|v| v.get("name").map(scalar)).collect();
    let flat: Vec<Vec<(String, String)>> = values
        .iter()
        .map(|v| {
            let mut out = Vec::new();
            flatten(v, "", &mut out);
            out.retain(|(k, _)| k != "name");
            out
        })
        .collect();
    let labels: Vec<Value> = values
        .iter()
        .enumerate()
        .map(|(i, v)| {
            if !v.is_object() {
                return v.clone();
            }
            // The other values this one must be told apart from.
            let peers: Vec<usize> = (0..values.len())
                .filter(|&j| j != i && values[j].is_object() && names[j] == names[i])
                .collect();
            let differing: Vec<String> = flat[i]
                .iter()
                .filter(|(k, val)| {
                    peers.iter().any(|&j| {
                        flat[j]
                            .iter()
                            .find(|(k2, _)| k2 == k)
                            .is_none_or(|(_, v2)| v2 != val)
                    })
                })
                .map(|(k, val)| format!("{k}={val}"))
                .collect();
            let mut parts: Vec<String> = names[i].iter().cloned().collect();
            parts.extend(differing);
            // Nothing to tell it apart from and no name (an axis narrowed
            // to one value by `--set`): its fields say what it is.
            if parts.is_empty() {
                parts = flat[i]
                    .iter()
                    .map(|(k, val)| format!("{k}={val}"))
                    .collect();
            }
            Value::String(if parts.is_empty() {
                "{}".into()
            } else {
                parts.join(" ")
            })
        })
        .collect();
    // Still ambiguous (a field only one value sets, lists): compact JSON.
    let unique = labels.iter().collect::<HashSet<_>>().len() == labels.len();
    if unique {
        labels
    } else {
        values
            .iter()
            .zip(labels)
            .map(|(v, l)| {
                if v.is_object() {
                    Value::String(v.to_string())
                } else {
                    l
                }
            })
            .collect()
    }
}

/// Leaf values of a mapping as dotted keys and compact text.
fn flatten(v: &Value, prefix: &str, out: &mut Vec<(String, String)>) {
    match v {
        Value::Object(m) => {
            for (k, x) in m {
                let key = if prefix.is_empty() {
                    k.clone()
                } else {
                    format!("{prefix}.{k}")
                };
                flatten(x, &key, out);
            }
        }
        Value::String(s) => out.push((prefix.to_string(), s.clone())),
        other => out.push((prefix.to_string(), other.to_string())),
    }
}

/// `der++ buffer_size=8 seed=1`: the axes with more than one value, a
/// method axis by its label alone, others as `key=value`.
fn cell_label(values: &[(String, Value)], axes: &[(String, Vec<Value>)]) -> String {
    values
        .iter()
        .zip(axes)
        .filter(|(_, (_, all))| all.len() > 1)
        .map(|((k, v), _)| {
            let text = match v {
                Value::String(s) => s.clone(),
                other => other.to_string(),
            };
            if k == "method" {
                text
            } else {
                format!("{k}={text}")
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// Sets a dotted key path in a JSON object, creating maps on the way.
pub(crate) fn set_path(target: &mut Value, key_path: &str, value: Value) {
    let mut cur = target;
    let parts: Vec<&str> = key_path.split('.').collect();
    for (i, part) in parts.iter().enumerate() {
        if !cur.is_object() {
            *cur = Value::Object(Map::new());
        }
        let map = cur.as_object_mut().expect("object");
        if i + 1 == parts.len() {
            map.insert(part.to_string(), value);
            return;
        }
        cur = map
            .entry(part.to_string())
            .or_insert_with(|| Value::Object(Map::new()));
    }
}

fn has_top_key(map: &Map<String, Value>, key_path: &str) -> bool {
    let top = key_path.split('.').next().unwrap_or_default();
    map.contains_key(top)
}

/// `[experiment:]key.path=value`: without an experiment prefix it applies to
/// every experiment whose base or axes already has the top-level key.
fn apply_override(experiments: &mut [RawExperiment], o: &str) -> Result<(), RunnerError> {
    let (lhs, value) = o
        .split_once('=')
        .ok_or_else(|| RunnerError::Override(o.into(), "expected key=value".into()))?;
    let (target, key_path) = match lhs.split_once(':') {
        Some((e, k)) => (Some(e), k),
        None => (None, lhs),
    };
    if key_path.is_empty() {
        return Err(RunnerError::Override(o.into(), "empty key".into()));
    }
    let value: Value = serde_saphyr::from_str(value)
        .map_err(|e| RunnerError::Override(o.into(), format!("value is not valid YAML: {e}")))?;
    let mut applied = 0;
    for exp in experiments.iter_mut() {
        let chosen = match target {
            Some(name) => exp.name == name,
            None => has_top_key(&exp.base, key_path) || has_top_key(&exp.axes, key_path),
        };
        if !chosen {
            continue;
        }
        // An axis over this key would overwrite the override, so the override
        // replaces the axis: a list gives its values, anything else one value.
        if exp.axes.contains_key(key_path) {
            let values = match &value {
                Value::Array(_) => value.clone(),
                v => Value::Array(vec![v.clone()]),
            };
            exp.axes.insert(key_path.to_string(), values);
        } else {
            let mut base = Value::Object(std::mem::take(&mut exp.base));
            set_path(&mut base, key_path, value.clone());
            exp.base = match base {
                Value::Object(m) => m,
                _ => unreachable!(),
            };
        }
        applied += 1;
    }
    if applied == 0 {
        return Err(RunnerError::Override(
            o.into(),
            match target {
                Some(name) => format!("no experiment is named `{name}`"),
                None => "no experiment has this key; prefix it with `EXPERIMENT:` to add it".into(),
            },
        ));
    }
    Ok(())
}

fn fill_placeholders(v: &Value, places: &Places, seed: &str, experiment: &str) -> Value {
    match v {
        Value::String(s) => Value::String(
            s.replace("{results}", &places.results.to_string_lossy())
                .replace("{data}", &places.data.to_string_lossy())
                .replace("{seed}", seed)
                .replace("{experiment}", experiment),
        ),
        Value::Array(a) => Value::Array(
            a.iter()
                .map(|x| fill_placeholders(x, places, seed, experiment))
                .collect(),
        ),
        Value::Object(m) => Value::Object(
            m.iter()
                .map(|(k, x)| (k.clone(), fill_placeholders(x, places, seed, experiment)))
                .collect(),
        ),
        other => other.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use reusebench_continual::ContinualConfig;
    use reusebench_pretrain::PretrainConfig;

    const GRID: &str = r#"name: t
results: /tmp/reusebench-test-grid
experiments:
  - name: cl
    protocol: continual
    base:
      seed: 0
      data: { name: synthetic, classes: 4, train_per_class: 4, test_per_class: 2 }
      classes_per_task: 2
      backbone: { width: 4 }
      method: { name: sgd, epochs: 1, optimizer: { lr: 0.1 } }
    axes:
      method:
        - { name: sgd, epochs: 1, optimizer: { lr: 0.1 } }
        - { name: lp-ft, lp_epochs: 1, ft_epochs: 1, lp_optimizer: { lr: 0.1 }, ft_optimizer: { lr: 0.01 } }
      seed: [0, 1, 2]
"#;

    /// `err` names `at` (file and line) and says `what`.
    fn assert_error(err: &str, at: &str, what: &str) {
        assert!(err.contains(at) && err.contains(what), "{err}");
    }

    /// The error of `GRID` with `from` replaced by `to` (which must be there).
    fn rejected(from: &str, to: &str) -> String {
        let text = GRID.replace(from, to);
        assert_ne!(text, GRID, "`{from}` is not in the grid");
        parse(&text, &[]).unwrap_err().to_string()
    }

    fn parse(text: &str, overrides: &[&str]) -> Result<Grid, RunnerError> {
        let o: Vec<String> = overrides.iter().map(|s| s.to_string()).collect();
        parse_grid(&Registry::builtin(), Path::new("grid.yaml"), text, &o, None)
    }

    #[test]
    fn expands_cartesian_product_in_order() {
        let g = parse(GRID, &[]).unwrap();
        assert_eq!(g.cells.len(), 6);
        let labels: Vec<(String, String)> = g
            .cells
            .iter()
            .map(|c| {
                (
                    c.axis_label("method").unwrap(),
                    c.axis_label("seed").unwrap(),
                )
            })
            .collect();
        assert_eq!(labels[0], ("sgd".into(), "0".into()));
        assert_eq!(labels[2], ("sgd".into(), "2".into()));
        assert_eq!(labels[3], ("lp-ft".into(), "0".into()));
        assert_eq!(g.cells[4].label, "lp-ft seed=1");
        assert_eq!(g.cells[4].config.seed(), 1);
        assert_eq!(g.cells[4].config.method(), "lp-ft");
        let ids: HashSet<_> = g.cells.iter().map(|c| c.id.clone()).collect();
        assert_eq!(ids.len(), 6);
        // Ids are stable across parses.
        assert_eq!(parse(GRID, &[]).unwrap().cells[5].id, g.cells[5].id);
    }

    #[test]
    fn overrides_replace_axes_and_base() {
        let g = parse(GRID, &["seed=7", "cl:batch_size=8"]).unwrap();
        assert_eq!(g.cells.len(), 2);
        assert!(g.cells.iter().all(|c| c.config.seed() == 7));
        let c = g.cells[0].config.as_any().downcast_ref::<ContinualConfig>();
        assert_eq!(c.unwrap().batch_size, 8);
        let err = parse(GRID, &["nothing.here=1"]).unwrap_err().to_string();
        assert!(err.contains("no experiment has this key"), "{err}");
        let err = parse(GRID, &["seed"]).unwrap_err().to_string();
        assert!(err.contains("expected key=value"), "{err}");
    }

    #[test]
    fn unknown_key_names_line_and_key() {
        let err = rejected(
            "      classes_per_task: 2",
            "      classes_per_task: 2\n      learning_rate: 3",
        );
        assert!(err.contains("grid.yaml:10"), "{err}");
        assert!(err.contains("learning_rate"), "{err}");
    }

    #[test]
    fn wrong_type_names_line_and_key_path() {
        let err = rejected("classes_per_task: 2", "classes_per_task: two");
        assert!(err.contains("grid.yaml:9"), "{err}");
        assert!(err.contains("key `classes_per_task`"), "{err}");
    }

    #[test]
    fn error_inside_axis_value_points_at_axis() {
        let err = rejected("ft_optimizer: { lr: 0.01 }", "ft_optimizer: { lr: fast }");
        // The axis entry holding the bad value (the lp-ft line), not the axis key.
        assert!(err.contains("grid.yaml:15"), "{err}");
        // Inside a method the key goes down to the value, which is quoted.
        assert!(
            err.contains("key `method.ft_optimizer.lr`") && err.contains("\"fast\""),
            "{err}"
        );
        let err = rejected("ft_optimizer: { lr: 0.01 }", "ft_optimiser: { lr: 0.01 }");
        assert_error(&err, "grid.yaml:15", "unknown field `ft_optimiser`");
    }

    #[test]
    fn range_errors_name_the_key_inside_a_method_and_out() {
        // A method's setting (in an axis), a method's nested optimizer, and
        // a protocol setting: each typed with its range, each at its line.
        for (from, to, line, key, message) in [
            (
                "- { name: sgd, epochs: 1, optimizer: { lr: 0.1 } }\n        - { name: lp",
                "- { name: mas, epochs: 1, optimizer: { lr: 0.1 }, lambda: -2 }\n        - { name: lp",
                14,
                "method.lambda",
                "must be >= 0, got -2",
            ),
            (
                "lp_optimizer: { lr: 0.1 }",
                "lp_optimizer: { lr: 0.1, momentum: 1.5 }",
                15,
                "method.lp_optimizer.momentum",
                "must be in [0, 1), got 1.5",
            ),
            (
                "      classes_per_task: 2\n",
                "      classes_per_task: 2\n      knn: { k: 0 }\n",
                10,
                "knn.k",
                "must be >= 1, got 0",
            ),
        ] {
            let text = GRID.replace(from, to);
            assert_ne!(text, GRID, "{from}");
            let err = parse(&text, &[]).unwrap_err().to_string();
            assert!(
                err.contains(&format!("grid.yaml:{line}"))
                    && err.contains(&format!("key `{key}`: {message}")),
                "{err}"
            );
        }
    }

    #[test]
    fn grid_level_errors_have_lines() {
        let err = rejected("results:", "resluts:");
        assert!(err.contains("grid.yaml:2"), "{err}");
        assert!(err.contains("resluts"), "{err}");
        let err = rejected("protocol: continual", "protocol: continuous");
        assert!(err.contains("grid.yaml:5"), "{err}");
    }

    #[cfg(not(feature = "cuda"))]
    #[test]
    fn device_without_its_backend_is_reported_at_its_line() {
        let err = rejected(
            "results: /tmp/reusebench-test-grid\n",
            "results: /tmp/reusebench-test-grid\ndevice: cuda:0\n",
        );
        assert_error(&err, "grid.yaml:3", "--features cuda");
        let err = parse_grid(
            &Registry::builtin(),
            Path::new("grid.yaml"),
            GRID,
            &[],
            Some("cuda:1"),
        )
        .unwrap_err()
        .to_string();
        assert!(
            err.contains("cuda:1") && !err.contains("grid.yaml:3"),
            "{err}"
        );
    }

    #[test]
    fn bad_hyperparameter_and_missing_file_are_reported_before_running() {
        let text = GRID.replace(
            "optimizer: { lr: 0.1 } }\n    axes",
            "optimizer: { lr: -1 } }\n    axes",
        );
        let text = text.replace("      seed: [0, 1, 2]\n", "");
        let text = text.replace("      method:\n        - { name: sgd, epochs: 1, optimizer: { lr: 0.1 } }\n        - { name: lp-ft, lp_epochs: 1, ft_epochs: 1, lp_optimizer: { lr: 0.1 }, ft_optimizer: { lr: 0.01 } }\n", "      seed: [0]\n");
        let err = parse(&text, &[]).unwrap_err().to_string();
        assert_error(
            &err,
            "grid.yaml:11",
            "key `method.optimizer.lr`: must be > 0",
        );
        let err = rejected(
            "backbone: { width: 4 }",
            "backbone: { width: 4, checkpoint: /nonexistent/x.safetensors }",
        );
        assert!(
            err.contains("/nonexistent/x.safetensors does not exist"),
            "{err}"
        );
    }

    #[test]
    fn impossible_task_splits_are_rejected_at_their_line() {
        for (value, expected) in [
            ("0", "must be >= 1"),
            ("3", "4 classes cannot be split into tasks of 3"),
        ] {
            let err = rejected("classes_per_task: 2", &format!("classes_per_task: {value}"));
            assert!(
                err.contains("grid.yaml:9")
                    && err.contains("key `classes_per_task`")
                    && err.contains(expected),
                "{value}: {err}"
            );
        }
        let err = rejected(
            "classes_per_task: 2",
            "classes_per_task: 2\n      classes: [0, 7]",
        );
        assert_error(&err, "grid.yaml:10", "class 7 does not exist");
    }

    #[test]
    fn a_broken_experiment_does_not_make_later_inputs_look_missing() {
        let text = format!(
            "name: t\nresults: /tmp/reusebench-test-grid\nexperiments:\n  - name: pre\n    protocol: pretrain\n    base:\n      seed: 0\n      data: {{ name: synthetic }}\n      epochs: 0\n      optimizer: {{ lr: 0.1 }}\n      output: \"{{results}}/ckpt.safetensors\"\n{}",
            GRID.split_once("experiments:\n").unwrap().1.replace(
                "backbone: { width: 4 }",
                "backbone: { width: 4, checkpoint: /tmp/reusebench-test-grid/ckpt.safetensors }"
            )
        );
        let err = parse(&text, &[]).unwrap_err().to_string();
        assert_error(&err, "grid.yaml:9", "key `epochs`");
        assert!(!err.contains("does not exist"), "{err}");
    }

    #[test]
    fn errors_in_a_later_experiment_point_into_that_experiment() {
        let text = format!(
            "{}\n  - name: cl2\n    protocol: continual\n    base:\n      seed: 0\n      data: {{ name: synthetic, classes: 4 }}\n      classes_per_task: 3\n      method: {{ name: sgd, epochs: 1, optimizer: {{ lr: 0.1 }} }}\n",
            GRID.trim_end()
        );
        let err = parse(&text, &[]).unwrap_err().to_string();
        assert!(
            err.contains("grid.yaml:22")
                && err.contains("experiment `cl2`, key `classes_per_task`"),
            "{err}"
        );
        assert_eq!(experiment_line(&text, 0), 4);
        assert_eq!(experiment_line(&text, 1), 17);
    }

    #[test]
    fn the_baseline_must_be_a_method_of_the_experiment() {
        let ok = GRID.replace("    axes:\n", "    baseline: sgd\n    axes:\n");
        let g = parse(&ok, &[]).unwrap();
        assert_eq!(g.baselines, vec![("cl".to_string(), "sgd".to_string())]);
        let bad = GRID.replace("    axes:\n", "    baseline: sdg\n    axes:\n");
        let err = parse(&bad, &[]).unwrap_err().to_string();
        assert!(
            err.contains("grid.yaml:12")
                && err.contains("key `baseline`")
                && err.contains("methods here: sgd, lp-ft"),
            "{err}"
        );
    }

    #[test]
    fn method_variants_are_labelled_by_what_differs() {
        let values: Vec<Value> = serde_json::from_str(
            r#"[{"name":"der++","epochs":1,"buffer_size":8,"alpha":0.1},
                {"name":"der++","epochs":1,"buffer_size":32,"alpha":0.1},
                {"name":"sgd","epochs":1}, 3]"#,
        )
        .unwrap();
        let labels = axis_labels(&values);
        assert_eq!(labels[0], "der++ buffer_size=8");
        assert_eq!(labels[1], "der++ buffer_size=32");
        assert_eq!(labels[2], "sgd");
        assert_eq!(labels[3], 3);
    }

    #[test]
    fn a_lone_nameless_value_is_labelled_by_its_fields() {
        // `--set 'tasks:shift=[{family: task, classes: [5, 6]}]'` narrows a
        // shift axis to one value: its rows still say which shift it was.
        let one: Vec<Value> =
            serde_json::from_str(r#"[{"family":"task","classes":[5,6]}]"#).unwrap();
        assert_eq!(axis_labels(&one)[0], "family=task classes=[5,6]");
        // Among peers, only what differs, as before.
        let two: Vec<Value> = serde_json::from_str(
            r#"[{"family":"task","classes":[5,6]}, {"family":"task","classes":[7,9]}]"#,
        )
        .unwrap();
        assert_eq!(axis_labels(&two)[0], "classes=[5,6]");
        assert_eq!(axis_labels(&[serde_json::json!({})])[0], "{}");
    }

    #[test]
    fn placeholders_are_filled_but_ids_use_the_template() {
        let text = format!(
            "{}\n  - name: pre\n    protocol: pretrain\n    base:\n      seed: 3\n      data: {{ name: synthetic }}\n      epochs: 1\n      optimizer: {{ lr: 0.1 }}\n      output: \"{{results}}/ckpt-{{seed}}.safetensors\"\n",
            GRID.trim_end()
        );
        let g = parse(&text, &[]).unwrap();
        let pre = g.cells.iter().find(|c| c.experiment == "pre").unwrap();
        let p = pre
            .config
            .as_any()
            .downcast_ref::<PretrainConfig>()
            .unwrap();
        assert_eq!(
            p.output,
            PathBuf::from("/tmp/reusebench-test-grid/ckpt-3.safetensors")
        );
        assert_eq!(
            pre.config_json["output"],
            "{results}/ckpt-{seed}.safetensors"
        );
    }
}
