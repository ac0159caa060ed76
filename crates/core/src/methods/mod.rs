//! Continual-learning methods. Each lives in its own file and is registered
//! once, in [`MethodConfig`] below: its YAML name, its settings and how to
//! build it. A method sees one task at a time through [`TaskContext`], which
//! offers the shared building blocks (fine-tuning with optional penalty
//! hooks, linear probing on cached features).

mod lp_ft;
mod sgd;

use std::sync::Arc;

use burn::tensor::Device;
use reusebench_data::{Augment, ImageSet, Normalization};
use serde::{Deserialize, Serialize};

pub use lp_ft::LpFt;
pub use sgd::Sgd;

use crate::error::CoreError;
use crate::features::features;
use crate::model::Classifier;
use crate::progress::Progress;
use crate::train::{OptimConfig, Stage, TrainHooks, fit, fit_linear};

/// A method as a grid names it (`method.name`), with its settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "name", rename_all = "kebab-case", deny_unknown_fields)]
pub enum MethodConfig {
    /// Plain sequential fine-tuning of every parameter.
    Sgd(Sgd),
    /// Per task: linear probe on frozen features, then fine-tune everything.
    LpFt(LpFt),
}

impl MethodConfig {
    pub fn name(&self) -> &'static str {
        match self {
            MethodConfig::Sgd(_) => "sgd",
            MethodConfig::LpFt(_) => "lp-ft",
        }
    }

    pub fn build(&self) -> Box<dyn ContinualMethod> {
        match self {
            MethodConfig::Sgd(m) => Box::new(m.clone()),
            MethodConfig::LpFt(m) => Box::new(m.clone()),
        }
    }

    /// Checks settings that types cannot (ranges, consistency).
    pub fn validate(&self) -> Result<(), CoreError> {
        self.build().validate()
    }
}

/// A continual-learning method: learns the tasks one after another.
pub trait ContinualMethod {
    fn validate(&self) -> Result<(), CoreError> {
        Ok(())
    }
    /// Trains `model` on the task `ctx` describes and returns it.
    fn learn_task(&mut self, model: Classifier, ctx: &TaskContext)
    -> Result<Classifier, CoreError>;
}

/// Everything a method may use while learning one task.
pub struct TaskContext<'a> {
    pub task: usize,
    pub num_tasks: usize,
    /// The task's training images, labels already in the sequence's numbering.
    pub train: Arc<ImageSet>,
    /// Size of the shared head (all classes of the sequence).
    pub num_classes: usize,
    pub batch_size: usize,
    pub eval_batch_size: usize,
    pub augment: Augment,
    pub normalization: Normalization,
    /// The cell's seed, mixed with the task index for this task's streams.
    pub seed: u64,
    /// The autodiff device the model lives on.
    pub device: &'a Device,
    pub progress: &'a dyn Progress,
}

impl TaskContext<'_> {
    /// A training stage over this task's data.
    pub fn stage<'o>(
        &self,
        label: &str,
        salt: u64,
        epochs: usize,
        optim: &'o OptimConfig,
    ) -> Stage<'o> {
        Stage {
            name: format!("task {}/{} · {label}", self.task + 1, self.num_tasks),
            epochs,
            batch_size: self.batch_size,
            optim,
            augment: self.augment,
            normalization: self.normalization,
            num_classes: self.num_classes,
            seed: self
                .seed
                .wrapping_mul(1_000_003)
                .wrapping_add(self.task as u64 * 101 + salt),
        }
    }

    /// Fine-tunes every parameter for `epochs`, adding `hooks`' penalties.
    pub fn fine_tune(
        &self,
        model: Classifier,
        epochs: usize,
        optim: &OptimConfig,
        hooks: &dyn TrainHooks,
    ) -> Result<Classifier, CoreError> {
        let stage = self.stage("fine-tune", 1, epochs, optim);
        Ok(fit(
            model,
            &self.train,
            &stage,
            hooks,
            self.device,
            self.progress,
        )?
        .0)
    }

    /// Trains only the head on the frozen backbone's features. The features
    /// are computed once (un-augmented, evaluation-mode batch norm) and
    /// reused for every epoch.
    pub fn linear_probe(
        &self,
        mut model: Classifier,
        epochs: usize,
        optim: &OptimConfig,
    ) -> Result<Classifier, CoreError> {
        let feats = features(
            &model.backbone,
            &self.train,
            self.eval_batch_size,
            self.normalization,
            self.device,
        );
        let stage = self.stage("linear probe", 2, epochs, optim);
        let (head, _) = fit_linear(
            model.head,
            &feats.values,
            &self.train.labels,
            feats.dim,
            &stage,
            self.device,
            self.progress,
        )?;
        model.head = head;
        Ok(model)
    }
}
