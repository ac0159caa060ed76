//! `l2-sp`: explicit inductive bias towards the starting point (Li et al.
//! 2018): (α/2)·‖w_backbone − w⁰_backbone‖² + (β/2)·‖w_head‖², with w⁰ the
//! backbone's weights before the first task (the pretrained ones).

use reusebench_core::method::Method;
use serde::{Deserialize, Serialize};

use super::{ContinualMethod, LpStage, TaskContext};
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
    pub alpha: f64,
    /// Weight of plain L2 on the head.
    #[serde(default = "default_beta")]
    pub beta: f64,
    #[serde(default)]
    pub lp: Option<LpStage>,
}

fn default_alpha() -> f64 {
    0.1
}
fn default_beta() -> f64 {
    0.01
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

impl Method for L2Sp {
    fn label(&self, name: &'static str) -> String {
        super::lp_label(name, &self.lp)
    }


    fn validate(&self) -> Result<(), CoreError> {
        self.optimizer.validate("method.optimizer")?;
        if let Some(lp) = &self.lp {
            lp.validate()?;
        }
        if self.alpha.is_nan() || self.alpha < 0.0 {
            return Err(CoreError::config("method.alpha", "must be >= 0"));
        }
        if self.beta.is_nan() || self.beta < 0.0 {
            return Err(CoreError::config("method.beta", "must be >= 0"));
        }
        Ok(())
    }
}

impl ContinualMethod for L2Sp {
    type State = Option<(ParamTable, ParamTable)>;
    fn learn_task(
        &self,
        state: &mut Self::State,
        model: Classifier,
        ctx: &TaskContext,
    ) -> Result<Classifier, CoreError> {
        if state.is_none() {
            let zeros = snapshot(&model.head)
                .into_iter()
                .map(|(k, v)| (k, v.zeros_like()))
                .collect();
            *state = Some((snapshot(model.backbone()), zeros));
        }
        let model = LpStage::run(&self.lp, model, ctx)?;
        let (start, zeros) = state.as_ref().expect("set above");
        ctx.fine_tune(
            model,
            self.epochs,
            &self.optimizer,
            &mut Pull {
                start,
                zeros,
                alpha: self.alpha,
                beta: self.beta,
            },
        )
    }
}
