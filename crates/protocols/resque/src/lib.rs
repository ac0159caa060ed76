//! `resque`: predict what retraining will cost from one forward pass
//! (Sangarya & Kim, "RESQUE", AAAI 2025), then retrain and measure the
//! real cost. One cell is one shift of a pretrained classifier's data:
//!
//! - a corruption at a level ([`reusebench_data::shift`]): RESQUE_dist
//!   on each class's training images split 50/30/20 (clean = parts 1 + 3,
//!   shifted = parts 2 + 3 corrupted), then the whole classifier is
//!   retrained on the corrupted training set until its accuracy on the
//!   corrupted test set reaches the target;
//! - a new task (other classes, of this dataset or another): RESQUE_task
//!   on the new training set's features, then the backbone with a fresh
//!   head is retrained on the new task until the target.
//!
//! The cost is measured by the core's [`CostHooks`]: epochs, gradient norm
//! per epoch, parameter change per layer, time, energy (RAPL or the CPU
//! model, recorded) and carbon. The report correlates RESQUE with each cost
//! over the cells.

pub mod score;

use reusebench_core::feature_cache::FeatureCache;
use reusebench_core::{Evaluator, Purpose, Seeds};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use burn::tensor::Device;
use rand::seq::SliceRandom;
use reusebench_core::CoreError;
use reusebench_core::backbone::BackboneConfig;
use reusebench_core::checkpoint::load_head;
use reusebench_core::cost::{CostConfig, CostHooks, CostReport, CostTracker};
use reusebench_core::features::{Tap, pooled_activations};
use reusebench_core::metrics::{Coords, MetricRow, names};
use reusebench_core::model::{Classifier, linear_head};
use reusebench_core::protocol::{
    Checks, Protocol, RunEnv, check_classes, default_batch_size, default_eval_batch_size,
    model_inputs,
};
use reusebench_core::train::{CurveSink, OptimConfig, Stage, fit_with};
use reusebench_data::parts::ClassParts;
use reusebench_data::shift::Corruption;
use reusebench_data::{Augment, DatasetSpec, ImageSet, Normalization, NormalizationChoice};
use serde::{Deserialize, Serialize};

/// The protocol, as the runner's registry names it.
pub struct Resque;

/// How strong a corruption is: exactly one of the three keys.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Strength {
    /// One of CIFAR-10-C's five severities.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub level: Option<usize>,
    /// The family's parameter itself (σ, a share, an offset, a factor), as
    /// the authors' `noise.py` takes it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub severity: Option<f64>,
    /// Calibrated: the parameter that removes this fraction of the
    /// pretrained classifier's accuracy on images it never saw (part 2 of
    /// `source_parts`), found by bisection before anything else runs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub drop: Option<f64>,
}

/// The shift a cell measures.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "family", rename_all = "kebab-case", deny_unknown_fields)]
pub enum ShiftConfig {
    GaussianNoise(Strength),
    SaltPepper(Strength),
    SaltPepperPerValue(Strength),
    GaussianBlur(Strength),
    Brightness(Strength),
    Contrast(Strength),
    /// A new task: `classes` of `data` (the cell's dataset when absent),
    /// renumbered 0..n in this order.
    Task {
        classes: Vec<u32>,
        // Boxed: a dataset spec is far larger than the other variants.
        #[serde(default)]
        data: Option<Box<DatasetSpec>>,
    },
}

impl ShiftConfig {
    fn corruption(&self) -> Option<(Corruption, &Strength)> {
        match self {
            ShiftConfig::GaussianNoise(s) => Some((Corruption::GaussianNoise, s)),
            ShiftConfig::SaltPepper(s) => Some((Corruption::SaltPepper, s)),
            ShiftConfig::SaltPepperPerValue(s) => Some((Corruption::SaltPepperPerValue, s)),
            ShiftConfig::GaussianBlur(s) => Some((Corruption::GaussianBlur, s)),
            ShiftConfig::Brightness(s) => Some((Corruption::Brightness, s)),
            ShiftConfig::Contrast(s) => Some((Corruption::Contrast, s)),
            ShiftConfig::Task { .. } => None,
        }
    }

    pub fn family(&self) -> &'static str {
        match self.corruption() {
            Some((c, _)) => c.name(),
            None => "task",
        }
    }
}

/// A distribution shift's target when the grid gives none: this fraction
/// of the clean accuracy.
pub const DEFAULT_TARGET_OF_CLEAN: f64 = 0.95;

/// How the model is retrained to the target.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RetrainConfig {
    /// Accuracy (%) on the shifted / new test set that ends retraining.
    #[serde(default)]
    pub target_acc: Option<f64>,
    /// Or: this fraction of the pretrained classifier's accuracy on the
    /// clean test set (distribution shifts: retraining recovers what the
    /// shift took). Give at most one of the two; a distribution shift
    /// without either aims at 0.95 of the clean accuracy (reachable, where
    /// all of it often is not, so cells would end at the cap).
    #[serde(default)]
    pub target_of_clean: Option<f64>,
    /// The cap: retraining stops here if the target is not reached.
    pub max_epochs: usize,
    #[serde(default = "default_batch_size")]
    pub batch_size: usize,
    pub optimizer: OptimConfig,
    /// Training augmentation; the dataset's default when absent.
    #[serde(default)]
    pub augment: Option<Augment>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ResqueConfig {
    pub seed: u64,
    pub data: DatasetSpec,
    /// The source classes the classifier was pretrained on (renumbered
    /// 0..n in this order); all when absent.
    #[serde(default)]
    pub classes: Option<Vec<u32>>,
    #[serde(default)]
    pub backbone: BackboneConfig,
    /// The pretrained head (`pretrain`'s `head_output`): distribution shifts
    /// retrain the whole classifier. Not used by task shifts (fresh head).
    #[serde(default)]
    pub head: Option<PathBuf>,
    #[serde(default)]
    pub normalization: NormalizationChoice,
    #[serde(default = "default_eval_batch_size")]
    pub eval_batch_size: usize,
    /// The backbone stage whose averaged activations RESQUE_dist compares:
    /// a ResNet's `stem`, `layer1` .. `layer4` (default `layer4`), a ViT's
    /// `block0` .. (default its last block).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub layer: Option<String>,
    /// Where in that stage both scores read: `conv`, the raw output of its
    /// last convolution before batch norm and ReLU (a forward hook on that
    /// `Conv2d`, as the authors' `extractactivations.py`; the default), or
    /// `block`, the stage's output after its ReLU (this project's reading
    /// before 2026-12-06, non-negative, which narrows the angles).
    #[serde(default)]
    pub representation: Tap,
    /// The authors' partition of the source training set (their
    /// `SplitData/split.py`: each class cut 50/30/20 with a seed). With it,
    /// RESQUE_dist compares parts 1 + 3 clean with parts 2 + 3 shifted, a
    /// distribution shift retrains on parts 2 + 3 shifted, and `drop`
    /// calibrates on part 2; the pretraining should keep parts 1 + 3
    /// (pretrain's `train_parts`, keep [0, 2]). Without it, RESQUE_dist
    /// splits by the cell's seed and retraining uses the whole training
    /// set (this project's setup before 2026-12-06).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_parts: Option<ClassParts>,
    pub shift: ShiftConfig,
    pub retrain: RetrainConfig,
    #[serde(default)]
    pub cost: CostConfig,
}

/// Exactly one of level, severity and drop, each in its range.
fn check_strength(c: Corruption, s: &Strength, split: bool) -> Result<(), CoreError> {
    match (s.level, s.severity, s.drop) {
        (Some(level), None, None) => {
            if c.parameter(level).is_none() {
                return Err(CoreError::config(
                    "shift.level",
                    format!(
                        "{} has levels 1 to {}, got {level}",
                        c.name(),
                        reusebench_data::shift::LEVELS
                    ),
                ));
            }
        }
        (None, Some(p), None) => {
            if !c.accepts(p) {
                let (a, b) = c.parameter_range();
                return Err(CoreError::config(
                    "shift.severity",
                    format!("{} takes a parameter from {a} to {b}, got {p}", c.name()),
                ));
            }
        }
        (None, None, Some(d)) => {
            if !(d.is_finite() && d > 0.0 && d < 1.0) {
                return Err(CoreError::config(
                    "shift.drop",
                    format!("must be in (0, 1) (a fraction of the accuracy to remove), got {d}"),
                ));
            }
            if !split {
                return Err(CoreError::config(
                    "shift.drop",
                    "calibration needs images the pretrained classifier never saw: give `source_parts` \
                     (and pretrain with `train_parts`)",
                ));
            }
        }
        _ => {
            return Err(CoreError::config(
                "shift",
                format!("{}: give exactly one of level, severity and drop", c.name()),
            ));
        }
    }
    Ok(())
}

impl ResqueConfig {
    /// The stages this config's backbone has, and the one read (`layer`,
    /// else the last stage).
    fn layers(&self) -> Result<(Vec<String>, String), CoreError> {
        let names = self.backbone.layer_names()?;
        let chosen = match &self.layer {
            Some(layer) => layer.clone(),
            None => names.last().cloned().expect("a backbone has stages"),
        };
        Ok((names, chosen))
    }

    /// The stage read (`layer`, else the backbone's last).
    pub fn layer_name(&self) -> String {
        self.layers()
            .map(|(_, chosen)| chosen)
            .unwrap_or_else(|_| "layer4".into())
    }
}

impl Protocol for Resque {
    const NAME: &'static str = "resque";
    type Config = ResqueConfig;
    const OBJECTIVE: &'static str = names::ACC_AFTER_RETRAIN;

    fn validate(config: &ResqueConfig, checks: &Checks) -> Result<(), CoreError> {
        checks.data(&config.data, "data")?;
        checks.backbone(&config.backbone, "backbone", config.data.image_size())?;
        config.cost.validate("cost")?;
        if let Some(split) = &config.source_parts {
            split
                .check()
                .map_err(|m| CoreError::config("source_parts.shares", m))?;
            if split.shares.len() != 3 {
                return Err(CoreError::config(
                    "source_parts.shares",
                    "three parts: clean, shift, common (the authors' 50/30/20)",
                ));
            }
        }
        match (config.retrain.target_acc, config.retrain.target_of_clean) {
            (Some(target), None) => {
                if !(target.is_finite() && target > 0.0 && target <= 100.0) {
                    return Err(CoreError::config(
                        "retrain.target_acc",
                        format!("must be in (0, 100] (an accuracy in %), got {target}"),
                    ));
                }
            }
            (None, Some(f)) => {
                if !(f.is_finite() && f > 0.0 && f <= 1.0) {
                    return Err(CoreError::config(
                        "retrain.target_of_clean",
                        format!("must be in (0, 1] (a fraction of the clean accuracy), got {f}"),
                    ));
                }
                if matches!(config.shift, ShiftConfig::Task { .. }) {
                    return Err(CoreError::config(
                        "retrain.target_of_clean",
                        "a new task has no clean accuracy to recover: give target_acc",
                    ));
                }
            }
            (None, None) if matches!(config.shift, ShiftConfig::Task { .. }) => {
                return Err(CoreError::config(
                    "retrain.target_acc",
                    "a new task needs a target accuracy (%): it has no clean accuracy to recover",
                ));
            }
            // A distribution shift's default: 95 % of the clean accuracy.
            (None, None) => {}
            (Some(_), Some(_)) => {
                return Err(CoreError::config(
                    "retrain",
                    "give one of target_acc (%) and target_of_clean (a fraction), not both",
                ));
            }
        }
        if config.retrain.max_epochs == 0 {
            return Err(CoreError::config("retrain.max_epochs", "must be >= 1"));
        }
        if config.retrain.batch_size < 2 {
            return Err(CoreError::config("retrain.batch_size", "must be >= 2"));
        }
        let (layers, chosen) = config.layers()?;
        if !layers.contains(&chosen) {
            return Err(CoreError::config(
                "layer",
                format!(
                    "the backbone has no layer `{chosen}` (it has {})",
                    layers.join(", ")
                ),
            ));
        }
        if let (Some(classes), Some(n)) = (&config.classes, config.data.num_classes()) {
            check_classes(classes, n, config.data.short_name())?;
        }
        match &config.shift {
            ShiftConfig::Task { classes, data } => {
                let data = data.as_deref().unwrap_or(&config.data);
                if classes.len() < 2 {
                    return Err(CoreError::config(
                        "shift.classes",
                        "a task needs at least 2 classes",
                    ));
                }
                if let Some(n) = data.num_classes() {
                    check_classes(classes, n, data.short_name())
                        .map_err(|e| reusebench_core::protocol::prefix_key(e, "shift"))?;
                }
            }
            shift => {
                let (corruption, strength) = shift.corruption().expect("a corruption");
                check_strength(corruption, strength, config.source_parts.is_some())?;
                if config.head.is_none() {
                    return Err(CoreError::config(
                        "head",
                        "a distribution shift retrains the pretrained classifier: give its head (pretrain's head_output)",
                    ));
                }
            }
        }
        Ok(())
    }

    fn method(config: &ResqueConfig) -> String {
        config.shift.family().to_string()
    }

    fn inputs(config: &ResqueConfig) -> Vec<PathBuf> {
        let mut v = model_inputs(&config.data, &config.backbone, &config.head);
        if let ShiftConfig::Task {
            data: Some(data), ..
        } = &config.shift
        {
            v.extend(data.required_paths());
        }
        v
    }

    /// One cell: the shift and its one-pass prediction, then retraining to
    /// the target while the cost is tracked, then the cost's rows.
    fn run(config: &ResqueConfig, env: &RunEnv) -> Result<Vec<MetricRow>, CoreError> {
        let started = Instant::now();
        let device = env.train_device(config.seed)?;
        let cache = FeatureCache::default();
        let mut shifted = Shifted::prepare(config, env, &device, &cache)?;
        let bs = config.eval_batch_size;
        let evaluator = Evaluator::new(&device, &cache, bs, shifted.normalization);
        evaluator.add_since("data and score", started);
        let mut rows = std::mem::take(&mut shifted.rows);
        rows.extend(evaluator.timed("retrain", || retrain(config, env, &evaluator, shifted))?);
        rows.extend(evaluator.phase_rows());
        Ok(rows)
    }
}

/// `set`'s images whose label `map` sends somewhere, relabelled.
fn relabelled(set: &ImageSet, classes: &[u32]) -> ImageSet {
    set.select_classes(&|l: u32| classes.iter().position(|&c| c == l).map(|p| p as u32))
}

/// What to retrain, on what, and the prediction from one forward pass.
struct Shifted {
    model: Classifier,
    train: Arc<ImageSet>,
    test: Arc<ImageSet>,
    normalization: Normalization,
    /// The pretrained classifier's accuracy on the clean test set
    /// (distribution shifts only).
    clean: Option<f64>,
    /// The score (and the clean accuracy) as rows.
    rows: Vec<MetricRow>,
}

impl Shifted {
    fn prepare(
        config: &ResqueConfig,
        env: &RunEnv,
        device: &Device,
        cache: &FeatureCache,
    ) -> Result<Self, CoreError> {
        let (data, classes) = env.load_dataset(&config.data, &config.classes)?;
        let normalization = config.normalization.resolve(data.normalization);
        let evaluator = Evaluator::new(device, cache, config.eval_batch_size, normalization);
        let mut rows = Vec::new();
        let mut clean = None;
        let (model, train, test) = match &config.shift {
            ShiftConfig::Task {
                classes: task_classes,
                data: task_data,
            } => {
                let task = match task_data {
                    Some(spec) => env.load_dataset(spec, &Some(task_classes.clone()))?.0,
                    None => data.clone(),
                };
                let train = Arc::new(relabelled(&task.train, task_classes));
                let test = Arc::new(relabelled(&task.test, task_classes));
                let k = task_classes.len();
                let source =
                    env.build_classifier(&config.backbone, classes.len(), config.seed, device)?;
                let feats = pooled_activations(
                    source.backbone(),
                    &config.layer_name(),
                    config.representation,
                    &train,
                    config.eval_batch_size,
                    normalization,
                    device,
                )
                .ok_or_else(|| {
                    CoreError::config("layer", format!("no layer `{}`", config.layer_name()))
                })?;
                rows.push(MetricRow::scalar(
                    names::RESQUE_TASK,
                    score::resque_task(&feats.values, feats.dim, &train.labels, k),
                ));
                let head = linear_head(
                    &mut env.rng(config.seed, Purpose::Head),
                    config.backbone.feature_dim(),
                    k,
                    device,
                );
                (
                    Classifier::new(source.backbone().clone(), head),
                    train,
                    test,
                )
            }
            shift => {
                let (corruption, strength) = shift.corruption().expect("a corruption");
                let k = classes.len();
                let source_train = relabelled(&data.train, &classes);
                let source_test = relabelled(&data.test, &classes);
                let mut model = env.build_classifier(&config.backbone, k, config.seed, device)?;
                let head_path = config.head.as_ref().expect("validated");
                model.head = load_head(model.head.clone(), head_path)?;
                let parts = SourceParts::of(config, env, &source_train);
                let severity = match (strength.level, strength.severity, strength.drop) {
                    (Some(level), _, _) => corruption.parameter(level).expect("validated level"),
                    (_, Some(p), _) => p,
                    (_, _, Some(drop)) => {
                        let images = Arc::new(source_train.subset(&parts.calibration));
                        let seed = Seeds::new(config.seed).of(Purpose::Calibration);
                        let found = calibrate(corruption, drop, &images, seed, &|set| {
                            evaluator.accuracy(&model, set)
                        });
                        rows.extend(found.rows());
                        found.severity
                    }
                    _ => unreachable!("validated: one of level, severity, drop"),
                };
                rows.push(MetricRow::scalar(names::SHIFT_SEVERITY, severity));
                let shifted = |set: &ImageSet, stream: Purpose| {
                    corruption.apply_parameter(severity, set, Seeds::new(config.seed).of(stream))
                };
                let clean_part = Arc::new(source_train.subset(&parts.clean));
                let shift_part = source_train.subset(&parts.shifted);
                // With the authors' split, RESQUE reads the very images
                // retraining then trains on; without it, its own draw.
                let (score_shifted, train) = if config.source_parts.is_some() {
                    let t = Arc::new(shifted(&shift_part, Purpose::ShiftTrain));
                    (t.clone(), t)
                } else {
                    (
                        Arc::new(shifted(&shift_part, Purpose::ResqueSplit)),
                        Arc::new(shifted(&source_train, Purpose::ShiftTrain)),
                    )
                };
                rows.push(MetricRow::scalar(
                    names::RESQUE_DIST,
                    resque_dist_of(
                        config,
                        &model,
                        &clean_part,
                        &score_shifted,
                        normalization,
                        device,
                    )?,
                ));
                let clean_acc = evaluator.accuracy(&model, &Arc::new(source_test.clone()));
                rows.push(MetricRow::scalar(names::CLEAN_ACC, clean_acc));
                clean = Some(clean_acc);
                (
                    model,
                    train,
                    Arc::new(shifted(&source_test, Purpose::ShiftTest)),
                )
            }
        };
        Ok(Self {
            model,
            train,
            test,
            normalization,
            clean,
            rows,
        })
    }
}

/// Retrains `shifted.model` to the target and returns the rows of what it
/// cost.
fn retrain(
    config: &ResqueConfig,
    env: &RunEnv,
    evaluator: &Evaluator,
    shifted: Shifted,
) -> Result<Vec<MetricRow>, CoreError> {
    let device = evaluator.device;
    let Shifted {
        model,
        train,
        test,
        normalization,
        clean,
        ..
    } = shifted;
    let mut rows = Vec::new();
    let k = model.head.weight.dims()[1];
    let evaluate = |m: &Classifier| evaluator.accuracy(m, &test);
    let before = evaluate(&model);
    rows.push(MetricRow::scalar(names::ACC_BEFORE_RETRAIN, before));
    let target = match (
        config.retrain.target_acc,
        config.retrain.target_of_clean,
        clean,
    ) {
        (Some(t), _, _) => t,
        (None, Some(f), Some(c)) => f * c,
        (None, None, Some(c)) => DEFAULT_TARGET_OF_CLEAN * c,
        _ => unreachable!("validated: target_of_clean only with a distribution shift"),
    };
    rows.push(MetricRow::scalar(names::RETRAIN_TARGET, target));
    let tracker = CostTracker::start(&model, &config.cost);
    let mut hooks = CostHooks::new(tracker, &evaluate, Some(target));
    let (model, epochs) = if before >= target {
        (model, 0)
    } else {
        let stage = Stage {
            name: "retrain".into(),
            epochs: config.retrain.max_epochs,
            batch_size: config.retrain.batch_size,
            optim: &config.retrain.optimizer,
            augment: config
                .retrain
                .augment
                .unwrap_or(config.data.default_augment()),
            normalization,
            num_classes: k,
            seed: config.seed,
            curve: Some(CurveSink {
                log: &env.curves,
                coords: Coords::new().with(names::STAGE, "retrain"),
            }),
        };
        let (model, stats) = fit_with(
            model,
            &train,
            &stage,
            &mut hooks,
            &|m: &Classifier, x, _| m.forward(x),
            device,
            env.progress,
        )?;
        (model, stats.epochs)
    };
    let reached = before >= target || hooks.reached();
    let after = hooks.accuracy.last().copied().unwrap_or(before);
    let report = hooks.tracker.finish(&model);
    env.progress.note(&format!(
        "{}: {epochs} epoch(s) to {after:.2}% (target {target:.2}%{}), {:.1} J ({})",
        config.shift.family(),
        if reached { "" } else { ", not reached" },
        report.joules,
        report.energy_source.name()
    ));

    rows.push(MetricRow::scalar(names::ACC_AFTER_RETRAIN, after));
    rows.push(MetricRow::scalar(names::RETRAIN_EPOCHS, epochs as f64));
    rows.push(MetricRow::scalar(
        names::TARGET_REACHED,
        if reached { 1.0 } else { 0.0 },
    ));
    rows.extend(cost_rows(&report));
    Ok(rows)
}

/// The tracked cost of a retraining: gradient norms, parameter change,
/// time, energy, carbon.
fn cost_rows(report: &CostReport) -> Vec<MetricRow> {
    let mut rows = Vec::new();
    for (epoch, g) in report.grad_norm_per_epoch.iter().enumerate() {
        rows.push(MetricRow::at(
            names::GRAD_NORM,
            *g,
            Coords::new().with(names::EPOCH, epoch),
        ));
    }
    let n = report.grad_norm_per_epoch.len();
    rows.push(MetricRow::scalar(
        names::MEAN_GRAD_NORM,
        if n == 0 {
            0.0
        } else {
            report.grad_norm_per_epoch.iter().sum::<f64>() / n as f64
        },
    ));
    rows.push(MetricRow::scalar(
        names::GRAD_NORM_SUM,
        report.grad_norm_per_epoch.iter().sum::<f64>(),
    ));
    rows.push(MetricRow::scalar(names::PARAM_CHANGE, report.param_change));
    rows.push(MetricRow::scalar(
        names::PARAM_CHANGE_RELATIVE,
        report.param_change_relative,
    ));
    for (layer, change) in &report.param_change_by_layer {
        rows.push(MetricRow::at(
            names::PARAM_CHANGE_BY_LAYER,
            *change,
            Coords::new().with(names::LAYER, layer.as_str()),
        ));
    }
    rows.push(MetricRow::scalar(names::RETRAIN_SECONDS, report.seconds));
    rows.push(MetricRow::scalar(
        names::RETRAIN_CPU_SECONDS,
        report.cpu_seconds,
    ));
    rows.push(MetricRow::scalar(names::ENERGY_JOULES, report.joules));
    if let Some(gpu) = report.gpu_joules {
        rows.push(MetricRow::scalar(names::ENERGY_GPU_JOULES, gpu));
    }
    rows.push(MetricRow::scalar(
        names::ENERGY_FROM_RAPL,
        if report.energy_source == reusebench_core::cost::energy::EnergySource::Rapl {
            1.0
        } else {
            0.0
        },
    ));
    rows.push(MetricRow::scalar(names::CARBON_GRAMS, report.carbon_grams));
    rows
}

/// The source training set cut per class into three parts (50/30/20):
/// indices of the clean images RESQUE_dist reads (parts 1 + 3), of the
/// shifted ones (parts 2 + 3, before the corruption), and of the images
/// calibration reads (part 2).
struct SourceParts {
    clean: Vec<usize>,
    shifted: Vec<usize>,
    calibration: Vec<usize>,
}

impl SourceParts {
    /// The authors' partition (`source_parts`), or one drawn by the cell's seed.
    fn of(config: &ResqueConfig, env: &RunEnv, train: &ImageSet) -> Self {
        if let Some(split) = &config.source_parts {
            let p = split.indices(train);
            let joined = |a: &[usize], b: &[usize]| {
                let mut v = [a, b].concat();
                v.sort_unstable();
                v
            };
            return Self {
                clean: joined(&p[0], &p[2]),
                shifted: joined(&p[1], &p[2]),
                calibration: p[1].clone(),
            };
        }
        // The order (class by class, as shuffled) is the one results
        // before `source_parts` were computed with: the corruption's stream is
        // keyed by an image's position.
        let mut rng = env.rng(config.seed, Purpose::ResqueSplit);
        let (mut clean, mut shifted, mut calibration) = (Vec::new(), Vec::new(), Vec::new());
        let k = train.labels.iter().max().map_or(0, |&m| m + 1);
        for c in 0..k {
            let mut idx: Vec<usize> = (0..train.len()).filter(|&i| train.labels[i] == c).collect();
            idx.shuffle(&mut rng);
            let (a, b) = (idx.len() / 2, idx.len() * 8 / 10);
            clean.extend(&idx[..a]);
            clean.extend(&idx[b..]);
            shifted.extend(&idx[a..]);
            calibration.extend(&idx[a..b]);
        }
        Self {
            clean,
            shifted,
            calibration,
        }
    }
}

/// Halvings of the parameter range in [`calibrate`]: a resolution of
/// 1/1024 of the range (σ to 0.001 for noise, 0.008 px for blur).
const CALIBRATION_STEPS: usize = 10;

/// What calibration found.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Calibrated {
    severity: f64,
    clean: f64,
    shifted: f64,
}

impl Calibrated {
    fn drop(&self) -> f64 {
        if self.clean > 0.0 {
            1.0 - self.shifted / self.clean
        } else {
            0.0
        }
    }

    fn rows(&self) -> Vec<MetricRow> {
        vec![
            MetricRow::scalar(names::CALIBRATION_ACC_CLEAN, self.clean),
            MetricRow::scalar(names::CALIBRATION_ACC_SHIFTED, self.shifted),
            MetricRow::scalar(names::CALIBRATION_DROP, self.drop()),
        ]
    }
}

/// The weakest parameter of `corruption` (to 1/2^CALIBRATION_STEPS of its
/// range) at which `accuracy` on `images` is at most (1 − drop) × its clean
/// value: bisection, taking accuracy to fall as the parameter grows. Where
/// even the strongest parameter removes less, the strongest, and the rows
/// say how much it removed.
fn calibrate(
    corruption: Corruption,
    drop: f64,
    images: &Arc<ImageSet>,
    seed: u64,
    accuracy: &dyn Fn(&Arc<ImageSet>) -> f64,
) -> Calibrated {
    let clean = accuracy(images);
    let goal = clean * (1.0 - drop);
    let (rest, strongest) = corruption.parameter_range();
    let at = |t: f64| rest + t * (strongest - rest);
    let acc = |t: f64| accuracy(&Arc::new(corruption.apply_parameter(at(t), images, seed)));
    let (mut lo, mut hi) = (0.0, 1.0);
    let mut shifted = acc(hi);
    if shifted <= goal {
        for _ in 0..CALIBRATION_STEPS {
            let mid = (lo + hi) / 2.0;
            let a = acc(mid);
            if a <= goal {
                (hi, shifted) = (mid, a);
            } else {
                lo = mid;
            }
        }
    }
    Calibrated {
        severity: at(hi),
        clean,
        shifted,
    }
}

/// RESQUE_dist of `model`'s backbone between `clean` and `shifted` (the
/// same classes): per class, the angle between the summed activations.
fn resque_dist_of(
    config: &ResqueConfig,
    model: &Classifier,
    clean: &Arc<ImageSet>,
    shifted: &Arc<ImageSet>,
    normalization: Normalization,
    device: &Device,
) -> Result<f64, CoreError> {
    let k = model.head.weight.dims()[1];
    let act = |set: &Arc<ImageSet>| {
        pooled_activations(
            model.backbone(),
            &config.layer_name(),
            config.representation,
            set,
            config.eval_batch_size,
            normalization,
            device,
        )
        .ok_or_else(|| CoreError::config("layer", format!("no layer `{}`", config.layer_name())))
    };
    let (a, b) = (act(clean)?, act(shifted)?);
    Ok(score::resque_dist(
        &a.values,
        &clean.labels,
        &b.values,
        &shifted.labels,
        a.dim,
        k,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Without `layer`, RESQUE reads the backbone's last stage: a ResNet's
    /// `layer4`, a ViT's last block; a given layer is kept.
    #[test]
    fn the_default_layer_is_the_backbones_last_stage() {
        let config = |backbone: &str, layer: &str| -> ResqueConfig {
            serde_json::from_str(&format!(
                r#"{{"seed": 0, "data": {{"name": "synthetic"}}, "backbone": {backbone}{layer},
                    "shift": {{"family": "gaussian-noise", "level": 1}},
                    "retrain": {{"max_epochs": 1, "optimizer": {{"lr": 0.1}}}}}}"#
            ))
            .unwrap()
        };
        assert_eq!(config("{}", "").layer_name(), "layer4");
        assert_eq!(config(r#"{"arch": "vit-tiny"}"#, "").layer_name(), "block5");
        let two = config(r#"{"arch": "vit-tiny", "depth": 2}"#, "");
        assert_eq!(two.layer_name(), "block1");
        assert_eq!(two.layers().unwrap().0, ["block0", "block1"]);
        let given = config(r#"{"arch": "vit-tiny"}"#, r#", "layer": "block2""#);
        assert_eq!(given.layer_name(), "block2");
    }

    /// Two classes of 8x8 images with spread-out values (no 0 or 255).
    fn images(per_class: usize) -> ImageSet {
        let mut s = ImageSet::empty(3, 8, 8);
        for i in 0..2 * per_class {
            let img: Vec<u8> = (0..3 * 64)
                .map(|p| ((p * 13 + i * 29) % 180 + 40) as u8)
                .collect();
            s.push(&img, (i % 2) as u32);
        }
        s
    }

    /// The mean absolute deviation from each image's mean, as a stand-in
    /// accuracy that contrast scales exactly: factor c keeps c of it.
    fn spread(set: &Arc<ImageSet>) -> f64 {
        let n = set.image_len();
        set.pixels
            .chunks(n)
            .map(|img| {
                let m = img.iter().map(|&v| v as f64).sum::<f64>() / n as f64;
                img.iter().map(|&v| (v as f64 - m).abs()).sum::<f64>() / n as f64
            })
            .sum::<f64>()
    }

    #[test]
    fn calibration_finds_the_parameter_that_removes_the_asked_share() {
        let set = Arc::new(images(4));
        for drop in [0.05, 0.3, 0.6] {
            let found = calibrate(Corruption::Contrast, drop, &set, 0, &spread);
            // Contrast c keeps c of the spread: the answer is c = 1 − drop,
            // to the bisection's 1/1024 and the pixels' rounding.
            assert!(
                (found.severity - (1.0 - drop)).abs() < 0.01,
                "drop {drop}: c = {}",
                found.severity
            );
            assert!(found.drop() >= drop - 1e-9 && found.drop() < drop + 0.01);
            assert_eq!(found.rows().len(), 3);
        }
        // More drop, a stronger corruption (noise: a larger σ). Noise adds
        // spread, so the stand-in accuracy falls as it grows.
        let falls = |s: &Arc<ImageSet>| 1e4 / (1.0 + spread(s));
        let (a, b) = (
            calibrate(Corruption::GaussianNoise, 0.1, &set, 3, &falls).severity,
            calibrate(Corruption::GaussianNoise, 0.5, &set, 3, &falls).severity,
        );
        assert!(0.0 < a && a < b, "σ {a} then {b}");
    }

    #[test]
    fn an_unreachable_drop_takes_the_strongest_parameter_and_says_what_it_removed() {
        let set = Arc::new(images(4));
        let floor = |s: &Arc<ImageSet>| 50.0 + spread(s) / spread(&Arc::new(images(4))) * 50.0;
        let found = calibrate(Corruption::Contrast, 0.8, &set, 0, &floor);
        assert_eq!(found.severity, 0.0, "contrast's strongest factor");
        assert!(
            (found.drop() - 0.5).abs() < 0.01,
            "removed {}",
            found.drop()
        );
    }

    #[test]
    fn strength_takes_exactly_one_of_level_severity_and_drop() {
        let s = |level, severity, drop| Strength {
            level,
            severity,
            drop,
        };
        let c = Corruption::GaussianNoise;
        assert!(check_strength(c, &s(Some(3), None, None), false).is_ok());
        assert!(check_strength(c, &s(None, Some(0.2), None), false).is_ok());
        assert!(check_strength(c, &s(None, None, Some(0.2)), true).is_ok());
        let err = |st: &Strength, split| check_strength(c, st, split).unwrap_err().to_string();
        assert!(err(&s(None, None, Some(0.2)), false).contains("give `source_parts`"));
        assert!(err(&s(Some(1), Some(0.1), None), true).contains("exactly one"));
        assert!(err(&s(None, None, None), true).contains("exactly one"));
        assert!(err(&s(None, Some(1.5), None), true).contains("from 0 to 1"));
        assert!(err(&s(None, None, Some(1.0)), true).contains("(0, 1)"));
    }

    #[test]
    fn the_authors_split_scores_and_calibrates_on_parts_the_pretraining_left_out() {
        let train = images(20);
        let cut = ClassParts {
            shares: reusebench_data::parts::authors_shares(),
            seed: 1,
        };
        let p = cut.indices(&train);
        let split = SourceParts {
            clean: [p[0].clone(), p[2].clone()].concat(),
            shifted: [p[1].clone(), p[2].clone()].concat(),
            calibration: p[1].clone(),
        };
        // What pretrain keeps with keep [0, 2] is exactly RESQUE's clean set.
        let pretrained = reusebench_data::parts::PartSelection {
            shares: cut.shares.clone(),
            seed: 1,
            keep: vec![0, 2],
        }
        .select(&train);
        let mut clean = split.clean.clone();
        clean.sort_unstable();
        assert_eq!(train.subset(&clean).pixels, pretrained.pixels);
        assert!(split.calibration.iter().all(|i| !clean.contains(i)));
        assert_eq!(
            (
                split.clean.len(),
                split.shifted.len(),
                split.calibration.len()
            ),
            (28, 20, 12)
        );
    }
}
