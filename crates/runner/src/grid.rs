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

use reusebench_core::DeviceSpec;
use serde::Deserialize;
use serde_json::{Map, Value};

use crate::cell::{Cell, Protocol, ProtocolConfig, cell_id};
use crate::error::RunnerError;
use crate::locate::line_of;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawGrid {
    name: String,
    results: PathBuf,
    #[serde(default)]
    device: Option<String>,
    experiments: Vec<RawExperiment>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawExperiment {
    name: String,
    protocol: Protocol,
    base: Map<String, Value>,
    #[serde(default)]
    axes: Map<String, Value>,
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
}

/// Reads, overrides, expands and validates a grid. `overrides` are
/// `[experiment:]key.path=value` strings; `device` replaces the file's.
pub fn load_grid(
    path: &Path,
    overrides: &[String],
    device: Option<&str>,
) -> Result<Grid, RunnerError> {
    let text = std::fs::read_to_string(path).map_err(|e| RunnerError::io(path, e))?;
    parse_grid(path, &text, overrides, device)
}

fn grid_err(path: &Path, line: Option<u64>, message: impl Into<String>) -> RunnerError {
    RunnerError::Grid {
        path: path.to_path_buf(),
        line,
        message: message.into(),
    }
}

pub fn parse_grid(
    path: &Path,
    text: &str,
    overrides: &[String],
    device: Option<&str>,
) -> Result<Grid, RunnerError> {
    let mut raw: RawGrid = serde_saphyr::from_str(text).map_err(|e| {
        let line = e.location().map(|l| l.line());
        grid_err(path, line, e.without_snippet().to_string())
    })?;
    // Errors point at the file's `device:` line unless --device chose it.
    let device_line = match device {
        Some(_) => None,
        None => line_of(text, &["device".into()], 1),
    };
    let device_str = device
        .map(String::from)
        .or(raw.device.clone())
        .unwrap_or_else(|| "cpu".into());
    let device: DeviceSpec = device_str
        .parse()
        .map_err(|e: reusebench_core::CoreError| grid_err(path, device_line, e.to_string()))?;
    device
        .check_available()
        .map_err(|e| grid_err(path, device_line, e.to_string()))?;

    let mut names = HashSet::new();
    for (i, e) in raw.experiments.iter().enumerate() {
        if !names.insert(e.name.clone()) {
            let line = line_of(
                text,
                &["experiments".into(), i.to_string(), "name".into()],
                1,
            );
            return Err(grid_err(
                path,
                line,
                format!("experiment name `{}` is used twice", e.name),
            ));
        }
    }
    for o in overrides {
        apply_override(&mut raw.experiments, o)?;
    }

    let results = raw.results.clone();
    let mut cells = Vec::new();
    let mut problems = Vec::new();
    let mut axes_out = Vec::new();
    for (ei, exp) in raw.experiments.iter().enumerate() {
        let exp_line = experiment_line(text, ei);
        let axes: Vec<(String, Vec<Value>)> = match exp
            .axes
            .iter()
            .map(|(k, v)| match v {
                Value::Array(values) if !values.is_empty() => Ok((k.clone(), values.clone())),
                _ => Err(k.clone()),
            })
            .collect::<Result<_, _>>()
        {
            Ok(a) => a,
            Err(k) => {
                let line = line_of(text, &["axes".into(), k.clone()], exp_line);
                return Err(grid_err(
                    path,
                    line,
                    format!(
                        "experiment `{}`: axis `{k}` must be a non-empty list of values",
                        exp.name
                    ),
                ));
            }
        };
        axes_out.push((
            exp.name.clone(),
            axes.iter().map(|(k, _)| k.clone()).collect(),
        ));
        let labels: Vec<Vec<String>> = axes.iter().map(|(_, vs)| axis_labels(vs)).collect();
        for combo in cartesian(&axes.iter().map(|(_, v)| v.len()).collect::<Vec<_>>()) {
            let mut config = Value::Object(exp.base.clone());
            for (ai, &vi) in combo.iter().enumerate() {
                set_path(&mut config, &axes[ai].0, axes[ai].1[vi].clone());
            }
            let id = cell_id(&exp.name, exp.protocol, &config);
            let seed_label = config
                .get("seed")
                .map(|s| s.to_string())
                .unwrap_or_default();
            let resolved = fill_placeholders(&config, &results, &seed_label, &exp.name);
            let typed = match typed_config(exp.protocol, &resolved) {
                Ok(t) => t,
                Err((key_path, message)) => {
                    // A bad key from an axis is reported at the axis, otherwise in the base.
                    let axis = axes.iter().find(|(k, _)| key_path.starts_with(k.as_str()));
                    let segments: Vec<String> = match axis {
                        Some((k, _)) => vec!["axes".into(), k.clone()],
                        None => std::iter::once("base".to_string())
                            .chain(key_path.split('.').map(String::from))
                            .collect(),
                    };
                    let line = line_of(text, &segments, exp_line);
                    let at = line.map(|l| format!(":{l}")).unwrap_or_default();
                    let msg = format!(
                        "{}{at}: experiment `{}`, key `{key_path}`: {message}",
                        path.display(),
                        exp.name
                    );
                    if !problems.contains(&msg) {
                        problems.push(msg);
                    }
                    continue;
                }
            };
            let check = match &typed {
                ProtocolConfig::Pretrain(c) => c.validate(),
                ProtocolConfig::Continual(c) => c.validate(),
            };
            if let Err(e) = check {
                let msg = format!("{}: experiment `{}`: {e}", path.display(), exp.name);
                if !problems.contains(&msg) {
                    problems.push(msg);
                }
                continue;
            }
            cells.push(Cell {
                id,
                experiment: exp.name.clone(),
                protocol: exp.protocol,
                config: typed,
                config_json: config,
                axes: axes
                    .iter()
                    .zip(&labels)
                    .zip(&combo)
                    .map(|(((k, _), l), &vi)| (k.clone(), l[vi].clone()))
                    .collect(),
            });
        }
    }

    // Inputs must exist, or be written by an earlier cell of this grid.
    let mut produced: HashSet<PathBuf> = HashSet::new();
    for cell in &cells {
        for input in cell.config.inputs() {
            if !input.exists() && !produced.contains(&input) {
                let msg = format!(
                    "{}: experiment `{}`: file {} does not exist (and no earlier experiment writes it)",
                    path.display(),
                    cell.experiment,
                    input.display()
                );
                if !problems.contains(&msg) {
                    problems.push(msg);
                }
            }
        }
        produced.extend(cell.config.outputs());
    }
    let mut seen_ids = HashSet::new();
    for cell in &cells {
        if !seen_ids.insert(cell.id.clone()) {
            problems.push(format!(
                "{}: experiment `{}`: two cells have the same configuration (duplicate axis values?)",
                path.display(),
                cell.experiment
            ));
        }
    }
    if !problems.is_empty() {
        return Err(RunnerError::Invalid {
            path: path.to_path_buf(),
            problems,
        });
    }
    Ok(Grid {
        path: path.to_path_buf(),
        name: raw.name,
        results,
        device,
        cells,
        axes: axes_out,
    })
}

fn experiment_line(text: &str, index: usize) -> usize {
    line_of(
        text,
        &["experiments".into(), index.to_string(), "name".into()],
        1,
    )
    .map(|l| l as usize)
    .unwrap_or(1)
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

/// Labels of axis values: scalars as written; mappings by their `name` when
/// that is unique along the axis, else as compact JSON.
fn axis_labels(values: &[Value]) -> Vec<String> {
    let scalar = |v: &Value| match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    let names: Vec<Option<String>> = values.iter().map(|v| v.get("name").map(scalar)).collect();
    let unique = names.iter().all(Option::is_some)
        && names.iter().collect::<HashSet<_>>().len() == names.len();
    values
        .iter()
        .zip(names)
        .map(|(v, n)| match (v, n) {
            (Value::Object(_), Some(n)) if unique => n,
            (v, _) => scalar(v),
        })
        .collect()
}

/// Sets a dotted key path in a JSON object, creating maps on the way.
fn set_path(target: &mut Value, key_path: &str, value: Value) {
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

fn fill_placeholders(v: &Value, results: &Path, seed: &str, experiment: &str) -> Value {
    match v {
        Value::String(s) => Value::String(
            s.replace("{results}", &results.to_string_lossy())
                .replace("{seed}", seed)
                .replace("{experiment}", experiment),
        ),
        Value::Array(a) => Value::Array(
            a.iter()
                .map(|x| fill_placeholders(x, results, seed, experiment))
                .collect(),
        ),
        Value::Object(m) => Value::Object(
            m.iter()
                .map(|(k, x)| (k.clone(), fill_placeholders(x, results, seed, experiment)))
                .collect(),
        ),
        other => other.clone(),
    }
}

/// Deserializes into the protocol's config; on error returns the key path and message.
fn typed_config(protocol: Protocol, v: &Value) -> Result<ProtocolConfig, (String, String)> {
    fn de<T: serde::de::DeserializeOwned>(v: &Value) -> Result<T, (String, String)> {
        serde_path_to_error::deserialize(v.clone()).map_err(|e| {
            let p = e.path().to_string();
            let p = if p == "." { String::new() } else { p };
            (p, e.into_inner().to_string())
        })
    }
    match protocol {
        Protocol::Pretrain => de(v).map(|c| ProtocolConfig::Pretrain(Box::new(c))),
        Protocol::Continual => de(v).map(|c| ProtocolConfig::Continual(Box::new(c))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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

    fn parse(text: &str, overrides: &[&str]) -> Result<Grid, RunnerError> {
        let o: Vec<String> = overrides.iter().map(|s| s.to_string()).collect();
        parse_grid(Path::new("grid.yaml"), text, &o, None)
    }

    #[test]
    fn expands_cartesian_product_in_order() {
        let g = parse(GRID, &[]).unwrap();
        assert_eq!(g.cells.len(), 6);
        let labels: Vec<(String, String)> = g
            .cells
            .iter()
            .map(|c| (c.axes[0].1.clone(), c.axes[1].1.clone()))
            .collect();
        assert_eq!(labels[0], ("sgd".into(), "0".into()));
        assert_eq!(labels[2], ("sgd".into(), "2".into()));
        assert_eq!(labels[3], ("lp-ft".into(), "0".into()));
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
        match &g.cells[0].config {
            ProtocolConfig::Continual(c) => assert_eq!(c.batch_size, 8),
            _ => panic!(),
        }
        let err = parse(GRID, &["nothing.here=1"]).unwrap_err().to_string();
        assert!(err.contains("no experiment has this key"), "{err}");
        let err = parse(GRID, &["seed"]).unwrap_err().to_string();
        assert!(err.contains("expected key=value"), "{err}");
    }

    #[test]
    fn unknown_key_names_line_and_key() {
        let text = GRID.replace(
            "      classes_per_task: 2",
            "      classes_per_task: 2\n      learning_rate: 3",
        );
        let err = parse(&text, &[]).unwrap_err().to_string();
        assert!(err.contains("grid.yaml:10"), "{err}");
        assert!(err.contains("learning_rate"), "{err}");
    }

    #[test]
    fn wrong_type_names_line_and_key_path() {
        let text = GRID.replace("classes_per_task: 2", "classes_per_task: two");
        let err = parse(&text, &[]).unwrap_err().to_string();
        assert!(err.contains("grid.yaml:9"), "{err}");
        assert!(err.contains("key `classes_per_task`"), "{err}");
    }

    #[test]
    fn error_inside_axis_value_points_at_axis() {
        let text = GRID.replace("ft_optimizer: { lr: 0.01 }", "ft_optimizer: { lr: fast }");
        let err = parse(&text, &[]).unwrap_err().to_string();
        assert!(err.contains("grid.yaml:13"), "{err}");
        // Tagged configs (method, data) are reported at their own key, with the bad value.
        assert!(
            err.contains("key `method`") && err.contains("\"fast\""),
            "{err}"
        );
        let text = GRID.replace("ft_optimizer: { lr: 0.01 }", "ft_optimiser: { lr: 0.01 }");
        let err = parse(&text, &[]).unwrap_err().to_string();
        assert!(
            err.contains("grid.yaml:13") && err.contains("unknown field `ft_optimiser`"),
            "{err}"
        );
    }

    #[test]
    fn grid_level_errors_have_lines() {
        let text = GRID.replace("results:", "resluts:");
        let err = parse(&text, &[]).unwrap_err().to_string();
        assert!(err.contains("grid.yaml:2"), "{err}");
        assert!(err.contains("resluts"), "{err}");
        let text = GRID.replace("protocol: continual", "protocol: continuous");
        let err = parse(&text, &[]).unwrap_err().to_string();
        assert!(err.contains("grid.yaml:5"), "{err}");
    }

    #[cfg(not(feature = "cuda"))]
    #[test]
    fn device_without_its_backend_is_reported_at_its_line() {
        let text = GRID.replace(
            "results: /tmp/reusebench-test-grid\n",
            "results: /tmp/reusebench-test-grid\ndevice: cuda:0\n",
        );
        let err = parse(&text, &[]).unwrap_err().to_string();
        assert!(
            err.contains("grid.yaml:3") && err.contains("--features cuda"),
            "{err}"
        );
        let err = parse_grid(Path::new("grid.yaml"), GRID, &[], Some("cuda:1"))
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
        assert!(err.contains("method.optimizer.lr must be > 0"), "{err}");
        let text = GRID.replace(
            "backbone: { width: 4 }",
            "backbone: { width: 4, checkpoint: /nonexistent/x.safetensors }",
        );
        let err = parse(&text, &[]).unwrap_err().to_string();
        assert!(
            err.contains("/nonexistent/x.safetensors does not exist"),
            "{err}"
        );
    }

    #[test]
    fn placeholders_are_filled_but_ids_use_the_template() {
        let text = format!(
            "{}\n  - name: pre\n    protocol: pretrain\n    base:\n      seed: 3\n      data: {{ name: synthetic }}\n      epochs: 1\n      optimizer: {{ lr: 0.1 }}\n      output: \"{{results}}/ckpt-{{seed}}.safetensors\"\n",
            GRID.trim_end()
        );
        let g = parse(&text, &[]).unwrap();
        let pre = g.cells.iter().find(|c| c.experiment == "pre").unwrap();
        match &pre.config {
            ProtocolConfig::Pretrain(p) => assert_eq!(
                p.output,
                PathBuf::from("/tmp/reusebench-test-grid/ckpt-3.safetensors")
            ),
            _ => panic!(),
        }
        assert_eq!(
            pre.config_json["output"],
            "{results}/ckpt-{seed}.safetensors"
        );
    }
}
