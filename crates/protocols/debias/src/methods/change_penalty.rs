//! `change-penalty`, the paper's method (Penzel et al. 2024): θ frozen, a
//! zero-initialised θ′ on every parameter (or those under `params`), the
//! model computes with θ + θ′, loss = CE + λ‖θ′‖ (L1, squared L2 or both).
//! The wrapper and the penalty are the core's (`penalties::with_change`,
//! `change_penalty`, `prox_change`).
//!
//! `update: prox` (the default) applies the penalty as a proximal step
//! after each gradient step on the cross-entropy: stable for every λ (a
//! gradient step on λ‖θ′‖ overshoots zero once lr·λ is large and diverged
//! to NaN at λ = 1 (L1) on a ResNet-18), λ → ∞ keeping θ′ at zero.
//! `update: gradient` adds λ‖θ′‖ to the loss as before.

use reusebench_core::method::Method;
use reusebench_core::CoreError;
use reusebench_core::model::Classifier;
use reusebench_core::penalties::{ChangeNorm, change_penalty, prox_change, with_change};
use reusebench_core::train::OptimConfig;
use serde::{Deserialize, Serialize};

use super::{DebiasMethodSpec, TuneContext, Tuned, tune_classifier, tune_classifier_updated};
use reusebench_core::bounded::NonNegative;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChangePenalty {
    pub optimizer: OptimConfig,
    /// λ, the weight of ‖θ′‖.
    pub lambda: NonNegative,
    #[serde(default)]
    pub norm: ChangeNorm,
    /// Module paths whose parameters get a θ′ (`head`, `encoder.Backbone.ResNet.layer4`);
    /// every parameter when empty.
    #[serde(default)]
    pub params: Vec<String>,
    /// How the penalty acts: a proximal step after each update (stable
    /// for every λ) or its gradient in the loss.
    #[serde(default)]
    pub update: PenaltyUpdate,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum PenaltyUpdate {
    #[default]
    Prox,
    Gradient,
}

impl Method for ChangePenalty {}

impl DebiasMethodSpec for ChangePenalty {
    fn tune(&self, start: &Classifier, ctx: &TuneContext) -> Result<Tuned, CoreError> {
        let wrapped = with_change(start.clone(), &self.params);
        if reusebench_core::penalties::changes(&wrapped).is_empty() {
            return Err(CoreError::config(
                "method.params",
                format!("no parameter is under {:?}", self.params),
            ));
        }
        let (lambda, norm) = (self.lambda.get(), self.norm);
        match self.update {
            PenaltyUpdate::Prox => tune_classifier_updated(
                wrapped,
                &self.optimizer,
                ctx,
                Box::new(move |m: Classifier, lr| prox_change(m, norm, lr, lambda)),
            ),
            PenaltyUpdate::Gradient => {
                let penalty =
                    Box::new(move |m: &Classifier| change_penalty(m, norm).map(|p| p * lambda));
                tune_classifier(wrapped, &self.optimizer, ctx, penalty)
            }
        }
    }
}
