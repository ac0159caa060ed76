//! `change-penalty`, the paper's method (Penzel et al. 2024): θ frozen, a
//! zero-initialised θ′ on every parameter (or those under `params`), the
//! model computes with θ + θ′, loss = CE + λ‖θ′‖ (L1, squared L2 or both).
//! The wrapper and the penalty are the core's (`penalties::with_change`,
//! `change_penalty`).

use reusebench_core::method::Method;
use reusebench_core::CoreError;
use reusebench_core::model::Classifier;
use reusebench_core::penalties::{ChangeNorm, change_penalty, with_change};
use reusebench_core::train::OptimConfig;
use serde::{Deserialize, Serialize};

use super::{DebiasMethodSpec, TuneContext, Tuned, tune_classifier};
use reusebench_core::bounded::NonNegative;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChangePenalty {
    pub optimizer: OptimConfig,
    /// λ, the weight of ‖θ′‖.
    pub lambda: NonNegative,
    #[serde(default)]
    pub norm: ChangeNorm,
    /// Module paths whose parameters get a θ′ (`head`, `encoder.Backbone.layer4`);
    /// every parameter when empty.
    #[serde(default)]
    pub params: Vec<String>,
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
        let penalty = Box::new(move |m: &Classifier| change_penalty(m, norm).map(|p| p * lambda));
        tune_classifier(wrapped, &self.optimizer, ctx, penalty)
    }
}
