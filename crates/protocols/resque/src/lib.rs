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
use reusebench_core::backbone::{BackboneConfig, ResNet};
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
use reusebench_data::shift::Corruption;
use reusebench_data::{Augment, DatasetSpec, ImageSet, Normalization, NormalizationChoice};
use serde::{Deserialize, Serialize};

/// The protocol, as the runner's registry names it.
pub struct Resque;

/// The shift a cell measures.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "family", rename_all = "kebab-case", deny_unknown_fields)]
pub enum ShiftConfig {
    GaussianNoise {
        level: usize,
    },
    SaltPepper {
        level: usize,
    },
    GaussianBlur {
        level: usize,
    },
    Brightness {
        level: usize,
    },
    Contrast {
        level: usize,
    },
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
    fn corruption(&self) -> Option<(Corruption, usize)> {
        match *self {
            ShiftConfig::GaussianNoise { level } => Some((Corruption::GaussianNoise, level)),
            ShiftConfig::SaltPepper { level } => Some((Corruption::SaltPepper, level)),
            ShiftConfig::GaussianBlur { level } => Some((Corruption::GaussianBlur, level)),
            ShiftConfig::Brightness { level } => Some((Corruption::Brightness, level)),
            ShiftConfig::Contrast { level } => Some((Corruption::Contrast, level)),
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
    /// The backbone stage whose spatially averaged activations RESQUE_dist
    /// compares (`stem`, `layer1` .. `layer4`).
    #[serde(default = "default_layer")]
    pub layer: String,
    /// Where in that stage both scores read: `conv`, the raw output of its
    /// last convolution before batch norm and ReLU (a forward hook on that
    /// `Conv2d`, as the authors' `extractactivations.py`; the default), or
    /// `block`, the stage's output after its ReLU (this project's reading
    /// before 2026-12-06, non-negative, which narrows the angles).
    #[serde(default)]
    pub representation: Tap,
    pub shift: ShiftConfig,
    pub retrain: RetrainConfig,
    #[serde(default)]
    pub cost: CostConfig,
}

fn default_layer() -> String {
    "layer4".into()
}

impl Protocol for Resque {
    const NAME: &'static str = "resque";
    type Config = ResqueConfig;
    const OBJECTIVE: &'static str = names::ACC_AFTER_RETRAIN;

    fn validate(config: &ResqueConfig, checks: &Checks) -> Result<(), CoreError> {
        checks.data(&config.data, "data")?;
        checks.backbone(&config.backbone, "backbone")?;
        config.cost.validate("cost")?;
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
        if !ResNet::LAYERS.contains(&config.layer.as_str()) {
            return Err(CoreError::config(
                "layer",
                format!(
                    "the backbone has no layer `{}` (it has {})",
                    config.layer,
                    ResNet::LAYERS.join(", ")
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
                let (corruption, level) = shift.corruption().expect("a corruption");
                if corruption.parameter(level).is_none() {
                    return Err(CoreError::config(
                        "shift.level",
                        format!(
                            "{} has levels 1 to {}, got {level}",
                            corruption.name(),
                            reusebench_data::shift::LEVELS
                        ),
                    ));
                }
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
                    &config.layer,
                    config.representation,
                    &train,
                    config.eval_batch_size,
                    normalization,
                    device,
                )
                .ok_or_else(|| {
                    CoreError::config("layer", format!("no layer `{}`", config.layer))
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
                let (corruption, level) = shift.corruption().expect("a corruption");
                let k = classes.len();
                let source_train = relabelled(&data.train, &classes);
                let source_test = relabelled(&data.test, &classes);
                let mut model = env.build_classifier(&config.backbone, k, config.seed, device)?;
                let head_path = config.head.as_ref().expect("validated");
                model.head = load_head(model.head.clone(), head_path)?;
                rows.push(MetricRow::scalar(
                    names::RESQUE_DIST,
                    resque_dist_of(
                        config,
                        env,
                        &model,
                        &source_train,
                        (corruption, level),
                        normalization,
                        device,
                    )?,
                ));
                let clean_acc = evaluator.accuracy(&model, &Arc::new(source_test.clone()));
                rows.push(MetricRow::scalar(names::CLEAN_ACC, clean_acc));
                clean = Some(clean_acc);
                let shifted = |set: &ImageSet, stream: Purpose| {
                    corruption
                        .apply(level, set, Seeds::new(config.seed).of(stream))
                        .expect("validated level")
                };
                (
                    model,
                    Arc::new(shifted(&source_train, Purpose::ShiftTrain)),
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

/// RESQUE_dist of `model`'s backbone for `corruption` at `level`: each
/// class's training images split 50/30/20 (seeded); clean = parts 1 and 3,
/// shifted = parts 2 and 3 corrupted.
fn resque_dist_of(
    config: &ResqueConfig,
    env: &RunEnv,
    model: &Classifier,
    train: &ImageSet,
    (corruption, level): (Corruption, usize),
    normalization: Normalization,
    device: &Device,
) -> Result<f64, CoreError> {
    let k = model.head.weight.dims()[1];
    let mut rng = env.rng(config.seed, Purpose::ResqueSplit);
    let (mut clean_idx, mut shifted_idx) = (Vec::new(), Vec::new());
    for c in 0..k as u32 {
        let mut idx: Vec<usize> = (0..train.len()).filter(|&i| train.labels[i] == c).collect();
        idx.shuffle(&mut rng);
        let (a, b) = (idx.len() / 2, idx.len() * 8 / 10);
        clean_idx.extend(&idx[..a]);
        clean_idx.extend(&idx[b..]);
        shifted_idx.extend(&idx[a..]);
    }
    let subset = |idx: &[usize]| {
        let mut s = ImageSet::empty(train.channels, train.height, train.width);
        for &i in idx {
            s.push_from(train, i, train.labels[i]);
        }
        s
    };
    let clean = Arc::new(subset(&clean_idx));
    let shifted = Arc::new(
        corruption
            .apply(
                level,
                &subset(&shifted_idx),
                Seeds::new(config.seed).of(Purpose::ResqueSplit),
            )
            .expect("validated level"),
    );
    let act = |set: &Arc<ImageSet>| {
        pooled_activations(
            model.backbone(),
            &config.layer,
            config.representation,
            set,
            config.eval_batch_size,
            normalization,
            device,
        )
        .ok_or_else(|| CoreError::config("layer", format!("no layer `{}`", config.layer)))
    };
    let (a, b) = (act(&clean)?, act(&shifted)?);
    Ok(score::resque_dist(
        &a.values,
        &clean.labels,
        &b.values,
        &shifted.labels,
        a.dim,
        k,
    ))
}
