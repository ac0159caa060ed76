//! `debias`: remove a learned shortcut with 1 to 32 counterexamples by
//! tuning while penalising change (Penzel, Stein & Denzler, VISAPP 2024).
//!
//! The classifier was pretrained (`pretrain` with `shortcut:`) on images
//! whose label a coloured patch or tint predicts with the given strength.
//! A cell draws k counterexamples from the training split — images whose
//! shortcut is another class's, labelled with their true class — tunes
//! the classifier on them with one method ([`methods`]), and measures
//! accuracy on unbiased, bias-aligned and bias-conflicting test images and
//! on the original (biased as in pretraining) task, before and after.

pub mod methods;

use reusebench_core::bounded::PositiveInt;
use reusebench_core::{Evaluator, Purpose, Seeds};
use std::path::PathBuf;
use std::sync::Arc;

use burn::module::ParamId;
use std::ops::Add;

use burn::tensor::Tensor;
use rand::seq::SliceRandom;
use reusebench_core::CoreError;
use reusebench_core::backbone::BackboneConfig;
use reusebench_core::checkpoint::load_head;
use reusebench_core::feature_cache::FeatureCache;
use reusebench_core::metrics::{MetricRow, names};
use reusebench_core::model::Classifier;
use reusebench_core::penalties::{bases, changes};
use reusebench_core::protocol::{
    Checks, Protocol, RunEnv, check_classes, default_eval_batch_size, model_inputs,
};
use reusebench_data::shortcut::Shortcut;
use reusebench_data::{DatasetSpec, ImageSet, NormalizationChoice};
use serde::{Deserialize, Serialize};

use methods::{DebiasMethod, TuneContext};

/// The protocol, as the runner's registry names it.
pub struct Debias;

/// How every method tunes: the cap and the paper's early stopping.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TuningConfig {
    /// Steps at most (each is one full batch of the k counterexamples).
    #[serde(default = "default_max_steps")]
    pub max_steps: PositiveInt,
    /// Stop once every counterexample is classified correctly...
    #[serde(default = "default_true")]
    pub early_stopping: bool,
    /// ...after at least this many steps. 0 (the default): the paper's rule
    /// as it states it, checked before the first step too, so a model that
    /// already gets every counterexample right is left as it is (there is
    /// no evidence of the bias to act on). The runs before 2026-12-06 used 5.
    #[serde(default = "default_min_steps")]
    pub min_steps: usize,
}

fn default_max_steps() -> PositiveInt {
    PositiveInt::of(100)
}
fn default_min_steps() -> usize {
    0
}
fn default_true() -> bool {
    true
}

impl Default for TuningConfig {
    fn default() -> Self {
        Self {
            max_steps: default_max_steps(),
            early_stopping: true,
            min_steps: default_min_steps(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DebiasConfig {
    pub seed: u64,
    pub data: DatasetSpec,
    /// The classes the classifier was pretrained on (renumbered 0..n).
    #[serde(default)]
    pub classes: Option<Vec<u32>>,
    pub backbone: BackboneConfig,
    /// The biased classifier's head (`pretrain`'s `head_output`).
    pub head: PathBuf,
    #[serde(default)]
    pub normalization: NormalizationChoice,
    #[serde(default = "default_eval_batch_size")]
    pub eval_batch_size: usize,
    /// The shortcut the classifier was pretrained with (the same as the
    /// pretrain cell's).
    pub shortcut: Shortcut,
    /// Counterexamples to tune on.
    pub k: PositiveInt,
    #[serde(default)]
    pub tuning: TuningConfig,
    pub method: DebiasMethod,
}

impl Protocol for Debias {
    const NAME: &'static str = "debias";
    type Config = DebiasConfig;
    const OBJECTIVE: &'static str = names::ACC_CONFLICTING;

    fn validate(config: &DebiasConfig, checks: &Checks) -> Result<(), CoreError> {
        checks.data(&config.data, "data")?;
        checks.backbone(&config.backbone, "backbone", config.data.image_size())?;
        config
            .shortcut
            .validate()
            .map_err(|m| CoreError::config("shortcut.strength", m))?;
        config.method.validate()?;
        if let (Some(classes), Some(n)) = (&config.classes, config.data.num_classes()) {
            check_classes(classes, n, config.data.short_name())?;
        }
        if let Some(counts) = config.data.class_counts(false) {
            let available: usize = match &config.classes {
                Some(c) => c
                    .iter()
                    .map(|&c| counts.get(c as usize).copied().unwrap_or(0))
                    .sum(),
                None => counts.iter().sum(),
            };
            if config.k.get() > available {
                return Err(CoreError::config(
                    "k",
                    format!(
                        "{} counterexamples asked, but the training split holds {available} images of these classes",
                        config.k
                    ),
                ));
            }
        }
        Ok(())
    }

    fn method(config: &DebiasConfig) -> String {
        config.method.name().to_string()
    }

    fn inputs(config: &DebiasConfig) -> Vec<PathBuf> {
        model_inputs(&config.data, &config.backbone, Some(&config.head))
    }

    fn run(config: &DebiasConfig, env: &RunEnv) -> Result<Vec<MetricRow>, CoreError> {
        let device = env.train_device(config.seed)?;
        let (data, classes) = env.load_dataset(&config.data, &config.classes)?;
        let k_classes = classes.len() as u32;
        let normalization = config.normalization.resolve(data.normalization);
        let relabel = |l: u32| classes.iter().position(|&c| c == l).map(|p| p as u32);
        let train = data.train.select_classes(&relabel);
        let test = data.test.select_classes(&relabel);
        let shortcut = &config.shortcut;
        let seed = config.seed;

        // The start: the biased classifier.
        let mut start = env.build_classifier(&config.backbone, classes.len(), seed, &device)?;
        start.head = load_head(start.head.clone(), &config.head)?;

        let tuning = Arc::new(counterexamples(config, env, &train, k_classes)?);
        // The pretraining data as it was (MAS estimates importance there).
        let pretraining = Arc::new(shortcut.biased(&train, k_classes, seed).0);

        let sets = test_sets(shortcut, &test, k_classes, seed);
        // Features through the core's cache: the start's backbone features of
        // the four sets are computed once and reused after tuning wherever the
        // backbone did not move (side-tuning's frozen base, a θ′ on the head
        // only); the key covers θ′, so a moved backbone is recomputed.
        let cache = FeatureCache::default();
        let evaluator = Evaluator::new(&device, &cache, config.eval_batch_size, normalization);
        let evaluate = |model: &Classifier, suffix: &str, rows: &mut Vec<MetricRow>| {
            // Per class, on images whose shortcut agrees and disagrees.
            let mut groups = Vec::new();
            for (metric, set) in &sets {
                let predicted = evaluator.cached_predictions(model, set);
                let acc = percent_correct(&predicted, &set.labels);
                rows.push(MetricRow::scalar(&format!("{metric}{suffix}"), acc));
                if [names::ACC_ALIGNED, names::ACC_CONFLICTING].contains(metric) {
                    groups.extend(per_class_accuracy(&predicted, &set.labels));
                }
            }
            let worst = groups.into_iter().fold(f64::INFINITY, f64::min);
            let name = format!("{}{suffix}", names::WORST_GROUP_ACC);
            rows.push(MetricRow::scalar(&name, worst));
        };
        let mut rows = Vec::new();
        evaluate(&start, names::BEFORE_SUFFIX, &mut rows);

        let ctx = TuneContext {
            tuning: &tuning,
            pretraining: &pretraining,
            classes: classes.len(),
            normalization,
            max_steps: config.tuning.max_steps.get(),
            early_stopping: config.tuning.early_stopping,
            min_steps: config.tuning.min_steps,
            seed,
            device: &device,
            progress: env.progress,
        };
        let tuned = evaluator.timed("tune", || config.method.spec().tune(&start, &ctx))?;
        evaluate(&tuned.model, "", &mut rows);
        rows.push(MetricRow::scalar(names::TUNING_STEPS, tuned.steps as f64));
        rows.push(MetricRow::scalar(
            names::STOPPED_EARLY,
            f64::from(u8::from(tuned.stopped_early)),
        ));
        rows.push(MetricRow::scalar(
            names::DELTA_NORM,
            change_norm(&start, &tuned.model),
        ));
        env.progress.note(&format!(
            "{} k={}: {} step(s){}",
            config.method.name(),
            config.k,
            tuned.steps,
            if tuned.stopped_early {
                ", stopped early"
            } else {
                ""
            }
        ));
        rows.extend(evaluator.phase_rows());
        Ok(rows)
    }
}

/// Share (%) of `predicted` equal to `labels`.
fn percent_correct(predicted: &[u32], labels: &[u32]) -> f64 {
    let right = predicted.iter().zip(labels).filter(|(p, l)| p == l).count();
    100.0 * right as f64 / labels.len().max(1) as f64
}

/// Accuracy (%) of every class that has images, in class order.
fn per_class_accuracy(predicted: &[u32], labels: &[u32]) -> Vec<f64> {
    let mut counts: std::collections::BTreeMap<u32, (usize, usize)> = Default::default();
    for (p, l) in predicted.iter().zip(labels) {
        let c = counts.entry(*l).or_default();
        c.0 += usize::from(p == l);
        c.1 += 1;
    }
    counts
        .values()
        .map(|&(right, n)| 100.0 * right as f64 / n as f64)
        .collect()
}

/// The four test sets every model is scored on, by metric: the test split
/// as it is, with the shortcut where it agrees with the label, where it
/// contradicts it, and as the biased training data has it.
fn test_sets(
    shortcut: &Shortcut,
    test: &ImageSet,
    k_classes: u32,
    seed: u64,
) -> [(&'static str, Arc<ImageSet>); 4] {
    let test_seed = Seeds::new(seed).of(Purpose::DebiasTest);
    [
        (names::ACC_UNBIASED, Arc::new(test.clone())),
        (names::ACC_ALIGNED, Arc::new(shortcut.aligned(test))),
        (
            names::ACC_CONFLICTING,
            Arc::new(shortcut.conflicting(test, k_classes, test_seed)),
        ),
        (
            names::ACC_ORIGINAL,
            Arc::new(shortcut.biased(test, k_classes, test_seed).0),
        ),
    ]
}

/// ‖Δθ‖₂ over the parameters `after` shares with `before` (a side
/// network's new parameters are not a change of the pretrained ones), θ′
/// included: visitors see a reparameterized parameter's stored base, so
/// the change θ′ adds is counted from the θ′ tensors themselves.
fn change_norm(before: &Classifier, after: &Classifier) -> f64 {
    let theta_prime: f64 = changes(after)
        .into_iter()
        .map(|d| d.powi_scalar(2).sum().into_scalar::<f32>() as f64)
        .sum();
    let start: std::collections::HashMap<ParamId, Tensor<1>> = bases(before).into_iter().collect();
    bases(after)
        .into_iter()
        .filter_map(|(id, v)| {
            start.get(&id).map(|s| {
                (v.to_device(&s.device()) - s.clone())
                    .powi_scalar(2)
                    .sum()
                    .into_scalar::<f32>() as f64
            })
        })
        .sum::<f64>()
        .add(theta_prime)
        .sqrt()
}

/// k counterexamples: drawn per seed from the training split (a seeded
/// permutation, so a smaller k's set is inside a larger one's), each with
/// another class's shortcut and its true label.
fn counterexamples(
    config: &DebiasConfig,
    env: &RunEnv,
    train: &ImageSet,
    k_classes: u32,
) -> Result<ImageSet, CoreError> {
    let mut order: Vec<usize> = (0..train.len()).collect();
    order.shuffle(&mut env.rng(config.seed, Purpose::Counterexamples));
    if config.k.get() > order.len() {
        return Err(CoreError::config(
            "k",
            format!(
                "{} counterexamples asked, {} training images",
                config.k,
                order.len()
            ),
        ));
    }
    let picked = train.subset(&order[..config.k.get()]);
    Ok(config.shortcut.conflicting(
        &picked,
        k_classes,
        Seeds::new(config.seed).of(Purpose::Counterexamples),
    ))
}
