//! `pretrain`: supervised training of a backbone on a dataset (or a subset
//! of its classes), writing a checkpoint that later grids start from.

use reusebench_core::bounded::PositiveInt;
use reusebench_core::feature_cache::FeatureCache;
use reusebench_core::{Evaluator, Purpose, Seeds};
use std::path::PathBuf;
use std::sync::Arc;

use reusebench_data::parts::PartSelection;
use reusebench_data::shortcut::Shortcut;
use reusebench_data::{Augment, DatasetSpec, NormalizationChoice};
use serde::{Deserialize, Serialize};

use reusebench_core::CoreError;
use reusebench_core::backbone::BackboneConfig;
use reusebench_core::checkpoint::{save_backbone, save_head};
use reusebench_core::metrics::{Coords, MetricRow, names};
use reusebench_core::protocol::{
    Checks, Protocol, RunEnv, check_classes, default_batch_size, default_eval_batch_size,
    model_inputs,
};
use reusebench_core::train::{CurveSink, NoHooks, OptimConfig, Stage, fit};

/// The protocol, as the runner's registry names it.
pub struct Pretrain;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PretrainConfig {
    pub seed: u64,
    pub data: DatasetSpec,
    /// Original class labels to train on (renumbered 0..n in this order); all when absent.
    #[serde(default)]
    pub classes: Option<Vec<u32>>,
    #[serde(default)]
    pub backbone: BackboneConfig,
    pub epochs: PositiveInt,
    #[serde(default = "default_batch_size")]
    pub batch_size: usize,
    #[serde(default = "default_eval_batch_size")]
    pub eval_batch_size: usize,
    pub optimizer: OptimConfig,
    /// Which statistics normalise the images: `dataset` (default),
    /// `imagenet` (for ImageNet-pretrained weights) or `{custom: {mean, std}}`.
    #[serde(default)]
    pub normalization: NormalizationChoice,
    /// Training augmentation; the dataset's default when absent (crop and
    /// flip, none for FMoW).
    #[serde(default)]
    pub augment: Option<Augment>,
    /// A shortcut injected into the training images (biased pretraining,
    /// for the debias protocol); the test accuracy is then also reported
    /// on bias-aligned and bias-conflicting test images.
    #[serde(default)]
    pub shortcut: Option<Shortcut>,
    /// Where the backbone checkpoint (safetensors) is written.
    /// Train on these parts of each class only (seeded, per class): the
    /// RESQUE authors pretrain on parts 1 + 3 of a 50/30/20 cut and shift
    /// part 2 + 3 (`{ shares: [50, 30, 20], seed: 1, keep: [0, 2] }`, with
    /// the same cut as the resque cells' `source_parts`). The test split is
    /// whole.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub train_parts: Option<PartSelection>,
    pub output: PathBuf,
    /// Where the trained head is written too (safetensors), for protocols
    /// that deploy the whole classifier (performative); not written when
    /// absent.
    #[serde(default)]
    pub head_output: Option<PathBuf>,
}

impl Protocol for Pretrain {
    const NAME: &'static str = "pretrain";
    type Config = PretrainConfig;
    const OBJECTIVE: &'static str = names::TEST_ACC;

    fn validate(config: &PretrainConfig, checks: &Checks) -> Result<(), CoreError> {
        checks.data(&config.data, "data")?;
        checks.backbone(&config.backbone, "backbone", config.data.image_size())?;
        if config.batch_size < 2 {
            return Err(CoreError::config("batch_size", "must be >= 2"));
        }
        if let (Some(classes), Some(n)) = (&config.classes, config.data.num_classes()) {
            check_classes(classes, n, config.data.short_name())?;
        }
        if let Some(parts) = &config.train_parts {
            parts
                .check()
                .map_err(|m| CoreError::config("train_parts", m))?;
        }
        if let Some(shortcut) = &config.shortcut {
            shortcut
                .validate()
                .map_err(|m| CoreError::config("shortcut", m))?;
        }
        Ok(())
    }

    fn inputs(config: &PretrainConfig) -> Vec<PathBuf> {
        model_inputs(&config.data, &config.backbone, None)
    }

    fn outputs(config: &PretrainConfig) -> Vec<PathBuf> {
        let mut v = vec![config.output.clone()];
        v.extend(config.head_output.clone());
        v
    }

    fn run(config: &PretrainConfig, env: &RunEnv) -> Result<Vec<MetricRow>, CoreError> {
        let progress = env.progress;
        let train_device = env.train_device(config.seed)?;
        let (data, classes) = env.load_dataset(&config.data, &config.classes)?;
        let normalization = config.normalization.resolve(data.normalization);
        let relabel = |l: u32| classes.iter().position(|&c| c == l).map(|p| p as u32);
        let train = data.train.select_classes(&relabel);
        let train = match &config.train_parts {
            Some(parts) => parts.select(&train),
            None => train,
        };
        let k = classes.len() as u32;
        let train = Arc::new(match &config.shortcut {
            Some(s) => {
                s.biased(&train, k, Seeds::new(config.seed).of(Purpose::Shortcut))
                    .0
            }
            None => train,
        });
        let test = Arc::new(data.test.select_classes(&relabel));
        let model =
            env.build_classifier(&config.backbone, classes.len(), config.seed, &train_device)?;
        let stage = Stage {
            name: "pretrain".into(),
            epochs: config.epochs.get(),
            batch_size: config.batch_size,
            optim: &config.optimizer,
            augment: config.augment.unwrap_or(config.data.default_augment()),
            normalization,
            num_classes: classes.len(),
            seed: config.seed,
            curve: Some(CurveSink {
                log: &env.curves,
                coords: Coords::new().with(names::STAGE, "pretrain"),
            }),
        };
        let cache = FeatureCache::default();
        let evaluator =
            Evaluator::new(&train_device, &cache, config.eval_batch_size, normalization);
        let (model, stats) = evaluator.timed("train", || {
            fit(model, &train, &stage, &mut NoHooks, &train_device, progress)
        })?;
        let acc = evaluator.accuracy(&model, &test);
        let mut rows = Vec::new();
        if let Some(s) = &config.shortcut {
            for (metric, set) in [
                (names::ACC_ALIGNED, s.aligned(&test)),
                (
                    names::ACC_CONFLICTING,
                    s.conflicting(&test, k, Seeds::new(config.seed).of(Purpose::Shortcut)),
                ),
            ] {
                rows.push(MetricRow::scalar(
                    metric,
                    evaluator.accuracy(&model, &Arc::new(set)),
                ));
            }
        }
        if !test.groups.is_empty() {
            let predictions = evaluator.cached_predictions(&model, &test);
            rows.extend(reusebench_core::metrics::group_rows(
                &predictions,
                &test,
                &data.group_names,
            ));
        }
        save_backbone(model.backbone(), &config.backbone, &config.output)?;
        if let Some(path) = &config.head_output {
            save_head(&model.head, path)?;
        }
        progress.note(&format!(
            "pretrained backbone: test accuracy {acc:.2}% on {} classes, saved to {}",
            classes.len(),
            config.output.display()
        ));
        rows.push(MetricRow::scalar(names::TEST_ACC, acc));
        rows.push(MetricRow::scalar(names::TRAIN_LOSS, stats.last_epoch_loss));
        rows.extend(evaluator.phase_rows());
        Ok(rows)
    }
}
