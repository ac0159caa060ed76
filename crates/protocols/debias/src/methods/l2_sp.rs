//! `l2-sp`: fine-tuning regularised towards the starting point (Li et al.
//! 2018; Barone et al. 2017): CE + λ·Σ(θ − θ₀)², the core's quadratic
//! penalty with uniform weights.

use reusebench_core::method::Method;
use reusebench_core::CoreError;
use reusebench_core::model::Classifier;
use reusebench_core::penalties::{quadratic_penalty, snapshot};
use reusebench_core::train::OptimConfig;
use serde::{Deserialize, Serialize};

use super::{DebiasMethodSpec, TuneContext, Tuned, trainable_frozen_bn, tune_classifier};
use reusebench_core::bounded::NonNegative;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct L2Sp {
    pub optimizer: OptimConfig,
    pub lambda: NonNegative,
}

impl Method for L2Sp {}

impl DebiasMethodSpec for L2Sp {
    fn tune(&self, start: &Classifier, ctx: &TuneContext) -> Result<Tuned, CoreError> {
        let model = trainable_frozen_bn(start);
        let anchor = snapshot(&model);
        let lambda = self.lambda.get();
        let penalty = move |m: &Classifier| quadratic_penalty(m, &anchor, None).map(|p| p * lambda);
        tune_classifier(model, &self.optimizer, ctx, Box::new(penalty))
    }
}
