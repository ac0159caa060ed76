//! `l2-sp`: fine-tuning regularised towards the starting point (Li et al.
//! 2018; Barone et al. 2017): CE + λ·Σ(θ − θ₀)², the core's quadratic
//! penalty with uniform weights.

use reusebench_core::method::Method;
use reusebench_core::CoreError;
use reusebench_core::model::Classifier;
use reusebench_core::penalties::{quadratic_penalty, snapshot};
use reusebench_core::train::OptimConfig;
use serde::{Deserialize, Serialize};

use super::{
    DebiasMethodSpec, TuneContext, Tuned, check_lambda, classifier_solves, trainable_frozen_bn,
    tune_with,
};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct L2Sp {
    pub optimizer: OptimConfig,
    pub lambda: f64,
}

impl Method for L2Sp {
    fn validate(&self) -> Result<(), CoreError> {
        self.optimizer.validate("method.optimizer")?;
        check_lambda(self.lambda)
    }
}

impl DebiasMethodSpec for L2Sp {
    fn tune(&self, start: &Classifier, ctx: &TuneContext) -> Result<Tuned, CoreError> {
        let model = trainable_frozen_bn(start);
        let anchor = snapshot(&model);
        let lambda = self.lambda;
        tune_with(
            model,
            &self.optimizer,
            ctx,
            Box::new(move |m: &Classifier| quadratic_penalty(m, &anchor, None).map(|p| p * lambda)),
            classifier_solves(ctx),
        )
        .map(Tuned::from)
    }
}
