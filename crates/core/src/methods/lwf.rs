//! `lwf`: Learning without Forgetting (Li & Hoiem 2017), class-incremental
//! form: while learning task t, add λ·distillation between the model before
//! task t and the current one, on the logits of the classes of tasks < t,
//! at temperature T (`penalties::distillation_loss`). The old model's
//! logits are computed on the same augmented batch.

use burn::module::Module;
use burn::tensor::Tensor;
use serde::{Deserialize, Serialize};

use super::{ContinualMethod, LpStage, TaskContext};
use crate::error::CoreError;
use crate::model::Classifier;
use crate::penalties::distillation_loss;
use crate::train::{NoHooks, OptimConfig, Step, TrainHooks};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Lwf {
    pub epochs: usize,
    pub optimizer: OptimConfig,
    /// Weight of the distillation term.
    #[serde(default = "default_lambda")]
    pub lambda: f64,
    #[serde(default = "default_temperature")]
    pub temperature: f64,
    #[serde(default)]
    pub lp: Option<LpStage>,
}

fn default_lambda() -> f64 {
    1.0
}
fn default_temperature() -> f64 {
    2.0
}

struct Distill<'a> {
    old: &'a Classifier,
    old_classes: usize,
    temperature: f64,
    lambda: f64,
}

impl TrainHooks<Classifier> for Distill<'_> {
    fn extra_loss(
        &mut self,
        _model: &Classifier,
        step: &Step,
    ) -> Result<Option<Tensor<1>>, CoreError> {
        let n = step.labels.len();
        let k = self.old_classes;
        let old = self
            .old
            .forward(step.images.clone().inner())
            .slice([0..n, 0..k])
            .autodiff();
        let new = step.logits.clone().slice([0..n, 0..k]);
        Ok(Some(
            distillation_loss(new, old, self.temperature) * self.lambda,
        ))
    }
}

impl ContinualMethod for Lwf {
    type State = Option<Box<Classifier>>;

    fn validate(&self) -> Result<(), CoreError> {
        self.optimizer.validate("method.optimizer")?;
        if let Some(lp) = &self.lp {
            lp.validate()?;
        }
        if self.lambda.is_nan() || self.lambda < 0.0 {
            return Err(CoreError::config("method.lambda", "must be >= 0"));
        }
        if self.temperature.is_nan() || self.temperature <= 0.0 {
            return Err(CoreError::config("method.temperature", "must be > 0"));
        }
        Ok(())
    }

    fn learn_task(
        &self,
        state: &mut Self::State,
        model: Classifier,
        ctx: &TaskContext,
    ) -> Result<Classifier, CoreError> {
        let model = LpStage::run(&self.lp, model, ctx)?;
        let old_classes = ctx.old_classes;
        let model = match &*state {
            Some(old) if old_classes > 0 => ctx.fine_tune(
                model,
                self.epochs,
                &self.optimizer,
                &mut Distill {
                    old,
                    old_classes,
                    temperature: self.temperature,
                    lambda: self.lambda,
                },
            )?,
            _ => ctx.fine_tune(model, self.epochs, &self.optimizer, &mut NoHooks)?,
        };
        *state = Some(Box::new(model.valid()));
        Ok(model)
    }
}
