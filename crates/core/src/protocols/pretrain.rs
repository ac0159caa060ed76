//! `pretrain`: supervised training of a backbone on a dataset (or a subset
//! of its classes), writing a checkpoint that later grids start from.

use std::path::PathBuf;
use std::sync::Arc;

use reusebench_data::{Augment, DatasetSpec};
use serde::{Deserialize, Serialize};

use super::{
    build_classifier, default_batch_size, default_eval_batch_size, load_with_classes, test_accuracy,
};
use crate::backbone::BackboneConfig;
use crate::checkpoint::save_backbone;
use crate::device::DeviceSpec;
use crate::error::CoreError;
use crate::metrics::MetricRow;
use crate::progress::Progress;
use crate::train::{NoHooks, OptimConfig, Stage, fit};

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
    pub epochs: usize,
    #[serde(default = "default_batch_size")]
    pub batch_size: usize,
    #[serde(default = "default_eval_batch_size")]
    pub eval_batch_size: usize,
    pub optimizer: OptimConfig,
    #[serde(default)]
    pub augment: Augment,
    /// Where the backbone checkpoint (safetensors) is written.
    pub output: PathBuf,
}

impl PretrainConfig {
    pub fn validate(&self) -> Result<(), CoreError> {
        self.optimizer.validate("optimizer")?;
        self.backbone.validate()?;
        if self.epochs == 0 || self.batch_size < 2 {
            return Err(CoreError::Config(
                "epochs must be >= 1 and batch_size >= 2".into(),
            ));
        }
        Ok(())
    }
}

pub fn run(
    config: &PretrainConfig,
    device: DeviceSpec,
    progress: &dyn Progress,
) -> Result<Vec<MetricRow>, CoreError> {
    config.validate()?;
    let plain = device.device()?;
    plain.seed(config.seed);
    let train_device = plain.clone().autodiff();
    let (data, classes) = load_with_classes(&config.data, &config.classes)?;
    let relabel = |l: u32| classes.iter().position(|&c| c == l).map(|p| p as u32);
    let train = Arc::new(data.train.select_classes(&relabel));
    let test = Arc::new(data.test.select_classes(&relabel));
    let model = build_classifier(
        &config.backbone,
        classes.len(),
        config.seed,
        &train_device,
        progress,
    )?;
    let stage = Stage {
        name: "pretrain".into(),
        epochs: config.epochs,
        batch_size: config.batch_size,
        optim: &config.optimizer,
        augment: config.augment,
        normalization: data.normalization,
        num_classes: classes.len(),
        seed: config.seed,
    };
    let (model, stats) = fit(model, &train, &stage, &mut NoHooks, &train_device, progress)?;
    let acc = test_accuracy(
        &model,
        &test,
        config.eval_batch_size,
        data.normalization,
        &train_device,
    );
    save_backbone(&model.backbone, &config.backbone, &config.output)?;
    progress.note(&format!(
        "pretrained backbone: test accuracy {acc:.2}% on {} classes, saved to {}",
        classes.len(),
        config.output.display()
    ));
    Ok(vec![
        MetricRow::scalar("test_acc", acc),
        MetricRow::scalar("train_loss", stats.last_epoch_loss),
    ])
}
