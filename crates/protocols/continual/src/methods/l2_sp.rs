//! `l2-sp`: explicit inductive bias towards the starting point (Li et al.
//! 2018): (α/2)·‖w_backbone − w⁰_backbone‖² + (β/2)·‖w_head‖², with w⁰ the
//! backbone's weights before the first task (the pretrained ones).

use reusebench_core::bounded::NonNegative;
use serde::{Deserialize, Serialize};

use super::{ContinualMethod, Learned, LpStage, TaskContext};
use reusebench_core::CoreError;
use reusebench_core::model::Classifier;
use reusebench_core::penalties::{ParamTable, quadratic_penalty, snapshot};
use reusebench_core::train::{OptimConfig, Step, TrainHooks};
use burn::tensor::Tensor;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct L2Sp {
    pub epochs: usize,
    pub optimizer: OptimConfig,
    /// Weight of the pull towards the pretrained backbone.
    #[serde(default = "default_alpha")]
    pub alpha: NonNegative,
    /// Weight of plain L2 on the head.
    #[serde(default = "default_beta")]
    pub beta: NonNegative,
    #[serde(default)]
    pub lp: Option<LpStage>,
}

fn default_alpha() -> NonNegative {
    NonNegative::of(0.1)
}
fn default_beta() -> NonNegative {
    NonNegative::of(0.01)
}

struct Pull<'a> {
    start: &'a ParamTable,
    zeros: &'a ParamTable,
    alpha: f64,
    beta: f64,
}

impl TrainHooks<Classifier> for Pull<'_> {
    fn extra_loss(
        &mut self,
        model: &Classifier,
        _step: &Step,
    ) -> Result<Option<Tensor<1>>, CoreError> {
        let a =
            quadratic_penalty(model.backbone(), self.start, None).map(|p| p * (self.alpha / 2.0));
        let b = quadratic_penalty(&model.head, self.zeros, None).map(|p| p * (self.beta / 2.0));
        Ok(match (a, b) {
            (Some(a), Some(b)) => Some(a + b),
            (a, b) => a.or(b),
        })
    }
}

super::probe_then_fine_tune!(L2Sp);

impl ContinualMethod for L2Sp {
    type State = Option<(ParamTable, ParamTable)>;
    fn learn_task(&self, state: &mut Self::State, model: Classifier, ctx: &TaskContext) -> Learned {
        if state.is_none() {
            let zeros = snapshot(&model.head)
                .into_iter()
                .map(|(k, v)| (k, v.zeros_like()))
                .collect();
            *state = Some((snapshot(model.backbone()), zeros));
        }
        let (start, zeros) = state.as_ref().expect("set above");
        self.training().run(
            model,
            ctx,
            &mut Pull {
                start,
                zeros,
                alpha: self.alpha.get(),
                beta: self.beta.get(),
            },
        )
    }
}
