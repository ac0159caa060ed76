//! Expanding an experiment with a `tune:` block: per value of its other
//! axes (a group), trial cells scored on validation, the rungs of
//! successive halving, and the final cells that rerun the selected
//! configuration on the final seeds and are scored on test.

use std::sync::Arc;

use serde_json::{Map, Value};

use super::{CellSite, Expansion, Places, RawExperiment, Source, cartesian, cell_label, set_path};
use crate::cell::{Cell, CellTuning, Pick, cell_id};
use crate::locate::line_of;
use crate::registry::ProtocolEntry;
use crate::tune::{Dist, RawTune, Search, TuningRecord, configurations};
use reusebench_results::tuning::values_label;

/// The experiment being expanded.
pub(super) struct Site<'a> {
    pub src: &'a Source<'a>,
    pub exp: &'a RawExperiment,
    pub exp_line: usize,
    pub protocol: &'a dyn ProtocolEntry,
    pub results: &'a Places,
}

impl Site<'_> {
    /// `:LINE` of `tune.<segments...>`.
    fn at(&self, segments: &[&str]) -> String {
        let path: Vec<String> = std::iter::once("tune")
            .chain(segments.iter().copied())
            .map(String::from)
            .collect();
        self.src.at(&path, self.exp_line)
    }

    fn problem(&self, x: &mut Expansion, segments: &[&str], message: &str) {
        let key = std::iter::once("tune")
            .chain(segments.iter().copied())
            .collect::<Vec<_>>()
            .join(".");
        let at = self.at(segments);
        x.problems
            .add(self.src.key_problem(&at, &self.exp.name, &key, message));
    }
}

/// A tuned key with where the grid writes it (`space` or `methods.<m>`).
struct Tuned {
    key: String,
    dist: Dist,
    under: Vec<String>,
}

/// The block's keys, parsed; problems recorded (then `None`).
fn parse_block(
    site: &Site,
    tune: &RawTune,
    x: &mut Expansion,
) -> Option<(Vec<Tuned>, Map<String, Value>)> {
    let before = x.problems.0.len();
    if tune.seeds.is_empty() {
        site.problem(x, &["seeds"], "needs at least one seed for the final runs");
    }
    if tune.trial_seeds.as_ref().is_some_and(Vec::is_empty) {
        site.problem(
            x,
            &["trial_seeds"],
            "needs at least one seed, or leave it out",
        );
    }
    if site.exp.axes.contains_key("seed") {
        let at = site.src.at(&["axes".into(), "seed".into()], site.exp_line);
        x.problems.add(site.src.key_problem(
            &at,
            &site.exp.name,
            "axes.seed",
            "an experiment with `tune:` takes its seeds from tune.seeds (final runs) and tune.trial_seeds",
        ));
    }
    if let Some(h) = &tune.halving {
        if h.min == 0 || h.min > h.max {
            site.problem(
                x,
                &["halving", "min"],
                &format!("need 1 <= min <= max, got min {} and max {}", h.min, h.max),
            );
        }
        if h.eta < 2 {
            site.problem(
                x,
                &["halving", "eta"],
                &format!("must be at least 2, got {}", h.eta),
            );
        }
    }
    let mut tuned = Vec::new();
    let mut parse_space = |space: &Map<String, Value>, under: Vec<String>, x: &mut Expansion| {
        for (key, v) in space {
            let mut at: Vec<&str> = under.iter().map(String::as_str).collect();
            at.push(key);
            if site.exp.axes.contains_key(key) {
                site.problem(
                    x,
                    &at,
                    &format!("`{key}` is an axis too: tune it or sweep it, not both"),
                );
                continue;
            }
            match Dist::parse(v) {
                Ok(dist) => tuned.push(Tuned {
                    key: key.clone(),
                    dist,
                    under: under.clone(),
                }),
                Err(m) => site.problem(x, &at, &m),
            }
        }
    };
    parse_space(&tune.space, vec!["space".into()], x);
    for (method, space) in &tune.methods {
        match space {
            Value::Object(m) => parse_space(m, vec!["methods".into(), method.clone()], x),
            _ => site.problem(
                x,
                &["methods", method],
                "a mapping of key: values or distribution",
            ),
        }
    }
    if tuned.is_empty() && x.problems.0.len() == before {
        site.problem(
            x,
            &["space"],
            "nothing to tune: give `space:` or `methods:` keys",
        );
    }
    (x.problems.0.len() == before).then_some((tuned, tune.methods.clone()))
}

/// Adds the experiment's trial, rung and final cells to `x`.
pub(super) fn expand(
    site: &Site,
    tune: &RawTune,
    axes: &[(String, Vec<Value>)],
    labels: &[Vec<Value>],
    x: &mut Expansion,
) {
    let Some((tuned, methods)) = parse_block(site, tune, x) else {
        return;
    };
    let exp = site.exp;
    let trial_seeds = tune
        .trial_seeds
        .clone()
        .unwrap_or_else(|| tune.seeds[..1].to_vec());
    let mut methods_seen = Vec::new();
    for combo in cartesian(&axes.iter().map(|(_, v)| v.len()).collect::<Vec<_>>()) {
        let group = Group::new(site, tune, axes, labels, &combo, &tuned, &trial_seeds);
        methods_seen.extend(group.method.clone());
        let expanded = if group.space.is_empty() {
            group.fixed_finals(x)
        } else {
            group.search(x)
        };
        if expanded.is_none() {
            return;
        }
    }
    for method in methods.keys() {
        if !methods_seen.contains(method) {
            let mut known = methods_seen.clone();
            known.dedup();
            site.problem(
                x,
                &["methods", method],
                &format!(
                    "no cell of this experiment runs method `{method}` (methods here: {})",
                    known.join(", ")
                ),
            );
        }
    }
    if x.cells
        .iter()
        .any(|c| c.experiment == exp.name && !c.config.outputs().is_empty())
    {
        let at = line_of(site.src.text, &["tune".into()], site.exp_line)
            .map(|l| format!(":{l}"))
            .unwrap_or_default();
        x.problems.add(site.src.key_problem(
            &at,
            &exp.name,
            "tune",
            "its cells write files (`output:`) that every trial would overwrite; tune the experiments that read them",
        ));
    }
}

/// One value of the experiment's other axes: its config before tuning,
/// the keys searched for it, and the cells it adds.
struct Group<'a> {
    site: &'a Site<'a>,
    tune: &'a RawTune,
    cell_site: CellSite<'a>,
    template: Value,
    group_axes: Vec<(String, Value)>,
    /// What the other axes say (`finetune k=4`), `all` where there are none.
    label: String,
    method: Option<String>,
    space: Vec<&'a Tuned>,
    trial_seeds: &'a [u64],
}

/// A cell to add: its config, what its id hashes, its place in the
/// search, its label and the axes it adds to its group's.
struct NewCell {
    config: Value,
    id_json: Value,
    tuning: CellTuning,
    label: String,
    extra_axes: Vec<(String, Value)>,
}

impl<'a> Group<'a> {
    fn new(
        site: &'a Site<'a>,
        tune: &'a RawTune,
        axes: &'a [(String, Vec<Value>)],
        labels: &[Vec<Value>],
        combo: &'a [usize],
        tuned: &'a [Tuned],
        trial_seeds: &'a [u64],
    ) -> Self {
        let mut template = Value::Object(site.exp.base.clone());
        for (ai, &vi) in combo.iter().enumerate() {
            set_path(&mut template, &axes[ai].0, axes[ai].1[vi].clone());
        }
        let method = template
            .pointer("/method/name")
            .and_then(Value::as_str)
            .map(String::from);
        let space = tuned
            .iter()
            .filter(|t| t.under.len() == 1 || Some(&t.under[1]) == method.as_ref())
            .collect();
        let group_axes: Vec<(String, Value)> = axes
            .iter()
            .zip(labels)
            .zip(combo)
            .map(|(((k, _), l), &vi)| (k.clone(), l[vi].clone()))
            .collect();
        let label = match cell_label(&group_axes, axes) {
            l if l.is_empty() => "all".to_string(),
            l => l,
        };
        Group {
            site,
            tune,
            cell_site: CellSite {
                src: site.src,
                exp: site.exp,
                exp_line: site.exp_line,
                axes,
                combo,
            },
            template,
            group_axes,
            label,
            method,
            space,
            trial_seeds,
        }
    }

    /// `finetune k=4 trial 3: ...`: the group's label before `what`.
    fn labelled(&self, what: String) -> String {
        if self.label == "all" {
            what
        } else {
            format!("{} {what}", self.label)
        }
    }

    /// A config of this group: tuned values, seed, split and budget set.
    fn config(
        &self,
        values: &Map<String, Value>,
        seed: u64,
        split: &str,
        budget: Option<u64>,
    ) -> Value {
        let mut c = self.template.clone();
        for (k, v) in values {
            set_path(&mut c, k, v.clone());
        }
        set_path(&mut c, "seed", Value::from(seed));
        set_path(&mut c, "split", Value::from(split));
        if split == "validation" {
            // A trial is scored on its objective alone: evaluation that
            // cannot feed it is off.
            let objective = self
                .tune
                .objective
                .as_deref()
                .unwrap_or(self.site.protocol.objective());
            for (key, prefix) in self.site.protocol.trial_skips() {
                if !objective.starts_with(prefix) {
                    set_path(&mut c, key, Value::Null);
                }
            }
        }
        if let (Some(h), Some(b)) = (&self.tune.halving, budget) {
            set_path(&mut c, &h.key, Value::from(b));
        }
        c
    }

    /// `:LINE` of a key: a tuned key (or one above or below it) at its
    /// line in `tune:`, any other where the cell's axes or base set it.
    fn locate(&self, key: &str) -> String {
        let tuned = self.space.iter().find(|t| {
            key == t.key
                || key.starts_with(&format!("{}.", t.key))
                || t.key.starts_with(&format!("{key}."))
        });
        match tuned {
            Some(t) => {
                let mut at: Vec<&str> = t.under.iter().map(String::as_str).collect();
                at.push(&t.key);
                self.site.at(&at)
            }
            None => self.cell_site.locate(key),
        }
    }

    fn objective(&self) -> String {
        self.tune
            .objective
            .clone()
            .unwrap_or_else(|| self.site.protocol.objective().to_string())
    }

    fn record(
        &self,
        role: &str,
        trial: usize,
        rung: usize,
        values: Map<String, Value>,
        trials: usize,
        search: &str,
    ) -> TuningRecord {
        TuningRecord {
            role: role.into(),
            group: self.label.clone(),
            trial,
            rung,
            values,
            validation_score: None,
            objective: self.objective(),
            direction: self.tune.direction,
            trials,
            search: search.into(),
            failed_trials: Vec::new(),
        }
    }

    /// Checks and adds a cell; its index, or `None` with its problem recorded.
    fn push(&self, x: &mut Expansion, new: NewCell) -> Option<usize> {
        let (typed, held_out) = self.cell_site.check_located(
            self.site.protocol,
            self.site.results,
            &new.config,
            x,
            &|key| self.locate(key),
        )?;
        let exp = self.site.exp;
        let mut axes = self.group_axes.clone();
        axes.extend(new.extra_axes);
        x.cells.push(Cell {
            id: cell_id(&exp.name, &exp.protocol, &new.id_json),
            experiment: exp.name.clone(),
            protocol: exp.protocol.clone(),
            config: Arc::from(typed),
            config_json: new.config,
            axes,
            label: new.label,
            energy: exp.energy.clone(),
            held_out,
            tuning: Some(new.tuning),
        });
        Some(x.cells.len() - 1)
    }

    /// The search: every configuration on every trial seed, the rungs of
    /// successive halving, then the final runs.
    fn search(&self, x: &mut Expansion) -> Option<()> {
        let dists: Vec<(String, Dist)> = self
            .space
            .iter()
            .map(|t| (t.key.clone(), t.dist.clone()))
            .collect();
        let search = match Search::of(self.tune, &dists) {
            Ok(s) => s,
            Err((k, m)) => {
                self.site.problem(x, &[&k], &m);
                return None;
            }
        };
        let confs = configurations(&self.site.exp.name, &dists, &search);
        let rungs = match &self.tune.halving {
            Some(h) => h.rungs(confs.len()),
            None => vec![(0, confs.len())],
        };
        let described = describe(&search, confs.len(), self.tune, self.trial_seeds);
        let budget = |r: usize| self.tune.halving.as_ref().map(|_| rungs[r].0);
        let mut previous = Vec::new();
        for (ti, values) in confs.iter().enumerate() {
            for &seed in self.trial_seeds {
                let config = self.config(values, seed, "validation", budget(0));
                let record = self.record("trial", ti, 0, values.clone(), confs.len(), &described);
                previous.push(self.push(
                    x,
                    NewCell {
                        id_json: config.clone(),
                        config,
                        tuning: CellTuning::Trial(Box::new(record)),
                        label: self.labelled(format!("trial {ti}: {}", values_label(values))),
                        extra_axes: vec![("trial".to_string(), Value::from(ti))],
                    },
                )?);
            }
        }
        // Later rungs, then the final runs: chosen from the cells before.
        let pick = |x: &mut Expansion, from: &[usize], rank: usize, rung: usize, seed: u64| {
            let is_final = rung == rungs.len();
            let (split, b) = match is_final {
                true => ("test", self.tune.halving.as_ref().map(|h| h.max)),
                false => ("validation", budget(rung)),
            };
            let role = if is_final { "final" } else { "trial" };
            let template = self.config(&Map::new(), seed, split, b);
            let mut id_json = template.clone();
            let rung_of_record = rung.min(rungs.len() - 1);
            let at = serde_json::json!({ "role": role, "rung": rung_of_record, "rank": rank });
            set_path(&mut id_json, "tuned", at);
            let pick = Pick {
                template: template.clone(),
                from: from.to_vec(),
                rank,
                record: self.record(role, 0, rung_of_record, Map::new(), confs.len(), &described),
                results: self.site.results.clone(),
            };
            let (label, extra_axes) = match is_final {
                true => (self.labelled("selected".into()), vec![]),
                false => (
                    self.labelled(format!("rung {rung} #{rank}")),
                    vec![("rung".to_string(), Value::from(rung))],
                ),
            };
            // Checked with the first configuration's values: their types are the space's.
            let first = confs.first().cloned().unwrap_or_default();
            let i = self.push(
                x,
                NewCell {
                    config: self.config(&first, seed, split, b),
                    id_json,
                    tuning: CellTuning::Pick(Arc::new(pick)),
                    label,
                    extra_axes,
                },
            )?;
            x.cells[i].config_json = template;
            Some(i)
        };
        for (r, &(_, kept)) in rungs.iter().enumerate().skip(1) {
            let mut this = Vec::new();
            for rank in 0..kept {
                for &seed in self.trial_seeds {
                    this.push(pick(x, &previous, rank, r, seed)?);
                }
            }
            previous = this;
        }
        for &seed in &self.tune.seeds {
            pick(x, &previous, 0, rungs.len(), seed)?;
        }
        Some(())
    }

    /// The final runs of a group with nothing to search (a method with no
    /// key in the space): the grid's own values on every final seed.
    fn fixed_finals(&self, x: &mut Expansion) -> Option<()> {
        let search = "nothing searched: the method has no key in the space";
        for &seed in &self.tune.seeds {
            let config = self.config(
                &Map::new(),
                seed,
                "test",
                self.tune.halving.as_ref().map(|h| h.max),
            );
            let record = self.record("final", 0, 0, Map::new(), 0, search);
            self.push(
                x,
                NewCell {
                    id_json: config.clone(),
                    config,
                    tuning: CellTuning::Trial(Box::new(record)),
                    label: self.labelled("fixed".into()),
                    extra_axes: vec![],
                },
            )?;
        }
        Some(())
    }
}

/// The search in words, for tuning.json and the report.
fn describe(search: &Search, n: usize, tune: &RawTune, trial_seeds: &[u64]) -> String {
    let mut s = match search {
        Search::Grid => format!("grid search, {n} configurations"),
        Search::Random(_) => format!("random search, {n} trials"),
    };
    if let Some(h) = &tune.halving {
        s.push_str(&format!(
            ", successive halving on {} {}→{} (η {})",
            h.key, h.min, h.max, h.eta
        ));
    }
    let seeds: Vec<String> = trial_seeds.iter().map(u64::to_string).collect();
    s.push_str(&format!(", trial seeds {}", seeds.join(" ")));
    s
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use crate::cell::CellTuning;
    use crate::grid::{Grid, parse_grid};
    use crate::registry::Registry;

    const TUNED: &str = r#"name: t
results: /tmp/reusebench-test-tune
experiments:
  - name: cl
    protocol: continual
    base:
      seed: 0
      data: { name: synthetic, classes: 4, train_per_class: 10, test_per_class: 2 }
      classes_per_task: 2
      backbone: { width: 4 }
      method: { name: sgd, epochs: 1, optimizer: { lr: 0.1 } }
    axes:
      method:
        - { name: sgd, epochs: 1, optimizer: { lr: 0.1 } }
        - { name: ewc, epochs: 1, optimizer: { lr: 0.1 }, lambda: 1.0 }
    tune:
      space:
        method.optimizer.lr: { loguniform: [0.001, 0.1] }
      methods:
        ewc:
          method.lambda: [0.1, 1.0, 10.0]
      trials: 3
      seeds: [0, 1]
"#;

    fn parse(text: &str) -> Result<Grid, String> {
        parse_grid(
            &Registry::builtin(),
            Path::new("grid.yaml"),
            text,
            &[],
            None,
        )
        .map_err(|e| e.to_string())
    }

    /// The error of `TUNED` with `from` replaced by `to`.
    fn rejected(from: &str, to: &str) -> String {
        let text = TUNED.replace(from, to);
        assert_ne!(text, TUNED, "`{from}` is not in the grid");
        parse(&text).unwrap_err()
    }

    #[test]
    fn expands_trials_then_finals_per_method() {
        let g = parse(TUNED).unwrap();
        // Per method: 3 trials on the trial seed (0), then 2 final runs.
        assert_eq!(g.cells.len(), 10);
        let roles: Vec<(String, String, u64)> = g
            .cells
            .iter()
            .map(|c| {
                let role = match &c.tuning {
                    Some(CellTuning::Trial(r)) => r.role.clone(),
                    Some(CellTuning::Pick(p)) => p.record.role.clone(),
                    None => "none".into(),
                };
                (c.config.method(), role, c.config.seed())
            })
            .collect();
        assert_eq!(roles[0], ("sgd".into(), "trial".into(), 0));
        assert_eq!(roles[3], ("sgd".into(), "final".into(), 0));
        assert_eq!(roles[4], ("sgd".into(), "final".into(), 1));
        assert_eq!(roles[9], ("ewc".into(), "final".into(), 1));
        // Trials are scored on validation, final runs on test.
        assert_eq!(
            g.cells[0].held_out.split,
            reusebench_data::Split::Validation
        );
        assert_eq!(g.cells[3].held_out.split, reusebench_data::Split::Test);
        // ewc's trials set its own λ; sgd's do not have one.
        assert!(g.cells[5].label.contains("lambda="), "{}", g.cells[5].label);
        assert!(!g.cells[0].label.contains("lambda"), "{}", g.cells[0].label);
        // The final cells rank the trials of their own group.
        let Some(CellTuning::Pick(p)) = &g.cells[3].tuning else {
            panic!("a final cell is chosen at run time")
        };
        assert_eq!(p.from, vec![0, 1, 2]);
    }

    #[test]
    fn halving_adds_rungs_at_growing_budgets() {
        let text = TUNED.replace(
            "      seeds: [0, 1]\n",
            "      seeds: [0]\n      halving: { key: method.epochs, min: 1, max: 2, eta: 2 }\n",
        );
        let g = parse(&text).unwrap();
        // Per method: 3 trials at 1 epoch, the best 2 again at 2 epochs, 1 final.
        assert_eq!(g.cells.len(), 12);
        let Some(CellTuning::Pick(p)) = &g.cells[3].tuning else {
            panic!("rung 1 is chosen at run time")
        };
        assert_eq!(
            (p.rank, p.record.rung, p.from.clone()),
            (0, 1, vec![0, 1, 2])
        );
        assert_eq!(p.template["method"]["epochs"], 2);
    }

    #[test]
    fn tune_errors_name_file_line_and_key() {
        let cases = [
            (
                "{ loguniform: [0.001, 0.1] }",
                "{ lognormal: [0.001, 0.1] }",
                "grid.yaml:18",
                "unknown distribution `lognormal`",
            ),
            (
                "{ loguniform: [0.001, 0.1] }",
                "{ uniform: [0.5, 0.1] }",
                "grid.yaml:18",
                "low must be below high",
            ),
            (
                "trials: 3",
                "trials: 0",
                "grid.yaml:22",
                "must be at least 1, got 0",
            ),
            (
                "        method.optimizer.lr: {",
                "        method.lambda: [1.0]\n        method.optimizer.lr: {",
                "grid.yaml:18",
                "lambda",
            ),
            (
                "      methods:\n        ewc:",
                "      methods:\n        mas:",
                "grid.yaml:20",
                "no cell of this experiment runs method `mas`",
            ),
            (
                "seeds: [0, 1]",
                "seeds: []",
                "grid.yaml:23",
                "at least one seed",
            ),
        ];
        for (from, to, at, what) in cases {
            let err = rejected(from, to);
            assert!(err.contains(at) && err.contains(what), "{to}: {err}");
            assert!(
                err.contains("key `tune.") || err.contains("key `method"),
                "{to}: {err}"
            );
        }
        // A tuned key sgd does not have: the line of the tuned key, its path.
        let err = rejected(
            "        method.optimizer.lr: {",
            "        method.lambda: [1.0]\n        method.optimizer.lr: {",
        );
        assert!(err.contains("key `method.lambda`"), "{err}");
        // Seeds come from the block, not from an axis.
        let err = rejected(
            "      method:\n        - { name: sgd",
            "      seed: [0, 1]\n      method:\n        - { name: sgd",
        );
        assert!(
            err.contains("grid.yaml:13") && err.contains("axes.seed"),
            "{err}"
        );
    }
}
