//! `mas`: Memory Aware Synapses (Aljundi et al. 2018): CE + λ·Σ Ω(θ − θ₀)²
//! with Ω the core's MAS importance, estimated on `samples` images of the
//! (biased) pretraining data — what the model knows and should keep.

use reusebench_core::method::Method;
use reusebench_core::CoreError;
use reusebench_core::model::Classifier;
use reusebench_core::penalties::{ImportanceKind, importance, quadratic_penalty, snapshot};
use reusebench_core::train::OptimConfig;
use serde::{Deserialize, Serialize};

use super::{
    DebiasMethodSpec, TuneContext, Tuned, check_lambda, classifier_solves, trainable_frozen_bn,
    tune_with,
};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Mas {
    pub optimizer: OptimConfig,
    pub lambda: f64,
    /// Pretraining images the importance is estimated on.
    #[serde(default = "default_samples")]
    pub samples: usize,
}

fn default_samples() -> usize {
    200
}

impl Method for Mas {
    fn validate(&self) -> Result<(), CoreError> {
        self.optimizer.validate("method.optimizer")?;
        check_lambda(self.lambda)?;
        if self.samples == 0 {
            return Err(CoreError::config("method.samples", "must be >= 1"));
        }
        Ok(())
    }
}

impl DebiasMethodSpec for Mas {
    fn tune(&self, start: &Classifier, ctx: &TuneContext) -> Result<Tuned, CoreError> {
        let model = trainable_frozen_bn(start);
        let omega = importance(
            &model,
            ctx.pretraining,
            ctx.normalization,
            ImportanceKind::Mas,
            Some(self.samples),
            ctx.seed,
            ctx.device,
            ctx.progress,
        )?;
        let anchor = snapshot(&model);
        let lambda = self.lambda;
        tune_with(
            model,
            &self.optimizer,
            ctx,
            Box::new(move |m: &Classifier| {
                quadratic_penalty(m, &anchor, Some(&omega)).map(|p| p * lambda)
            }),
            classifier_solves(ctx),
        )
        .map(Tuned::from)
    }
}
