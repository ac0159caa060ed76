//! `lwf`: Learning without Forgetting (Li & Hoiem 2017), class-incremental
//! form as in Mammoth's `models/lwf.py`: the cross-entropy is taken over
//! the classes seen so far (this task's included), not over future ones;
//! while learning task t, λ·T²·distillation between the model before task t
//! and the current one is added, on the logits of the classes of tasks < t,
//! at temperature T (`penalties::distillation_loss`).
//!
//! λ against Mammoth's α: Mammoth adds α·CE(softmax(old/T), softmax(new/T))
//! without the T² factor, so Mammoth's α is our λ·T² (α = 1 at T = 2 is
//! λ = 0.25). Mammoth's warm-up (the new classes' head columns trained on
//! frozen features before the task) is `lp: { epochs, optimizer,
//! new_classes_only: true }`. One difference stays: Mammoth computes the
//! old model's logits once per task on un-augmented images; here they are
//! computed on the same augmented batch as the current model's.

use reusebench_core::bounded::{NonNegative, Positive};
use burn::module::Module;
use burn::tensor::Tensor;
use serde::{Deserialize, Serialize};

use super::{ContinualMethod, Learned, LpStage, TaskContext};
use reusebench_core::CoreError;
use reusebench_core::model::Classifier;
use reusebench_core::penalties::distillation_loss;
use reusebench_core::train::{OptimConfig, Step, TrainHooks};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Lwf {
    pub epochs: usize,
    pub optimizer: OptimConfig,
    /// Weight of the distillation term.
    #[serde(default = "default_lambda")]
    pub lambda: NonNegative,
    #[serde(default = "default_temperature")]
    pub temperature: Positive,
    #[serde(default)]
    pub lp: Option<LpStage>,
}

fn default_lambda() -> NonNegative {
    NonNegative::of(1.0)
}
fn default_temperature() -> Positive {
    Positive::of(2.0)
}

struct LwfHook<'a> {
    /// The model after the previous task; none at the first task.
    old: Option<&'a Classifier>,
    old_classes: usize,
    seen_classes: usize,
    temperature: f64,
    lambda: f64,
}

impl TrainHooks<Classifier> for LwfHook<'_> {
    fn loss_columns(&self) -> Option<usize> {
        Some(self.seen_classes)
    }

    fn extra_loss(
        &mut self,
        _model: &Classifier,
        step: &Step,
    ) -> Result<Option<Tensor<1>>, CoreError> {
        let (Some(old), k) = (self.old, self.old_classes) else {
            return Ok(None);
        };
        if k == 0 {
            return Ok(None);
        }
        let n = step.labels.len();
        let old = old
            .forward(step.images.clone().inner())
            .slice([0..n, 0..k])
            .autodiff();
        let new = step.logits.clone().slice([0..n, 0..k]);
        Ok(Some(
            distillation_loss(new, old, self.temperature) * self.lambda,
        ))
    }
}

super::probe_then_fine_tune!(Lwf);

impl ContinualMethod for Lwf {
    type State = Option<Box<Classifier>>;
    fn learn_task(&self, state: &mut Self::State, model: Classifier, ctx: &TaskContext) -> Learned {
        let model = self.training().run(
            model,
            ctx,
            &mut LwfHook {
                old: state.as_deref(),
                old_classes: ctx.old_classes,
                seen_classes: ctx.seen_classes,
                temperature: self.temperature.get(),
                lambda: self.lambda.get(),
            },
        )?;
        *state = Some(Box::new(model.valid()));
        Ok(model)
    }
}
