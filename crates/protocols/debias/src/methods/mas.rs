//! `mas`: Memory Aware Synapses (Aljundi et al. 2018): CE + λ·Σ Ω(θ − θ₀)²
//! with Ω the core's MAS importance, estimated on `samples` images of the
//! (biased) pretraining data — what the model knows and should keep.

use reusebench_core::method::Method;
use reusebench_core::CoreError;
use reusebench_core::model::Classifier;
use reusebench_core::penalties::{ImportanceKind, importance, quadratic_penalty, snapshot};
use reusebench_core::train::OptimConfig;
use serde::{Deserialize, Serialize};

use super::{DebiasMethodSpec, TuneContext, Tuned, trainable_frozen_bn, tune_classifier};
use reusebench_core::bounded::{NonNegative, PositiveInt};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Mas {
    pub optimizer: OptimConfig,
    pub lambda: NonNegative,
    /// Pretraining images the importance is estimated on.
    #[serde(default = "default_samples")]
    pub samples: PositiveInt,
}

fn default_samples() -> PositiveInt {
    PositiveInt::of(200)
}

impl Method for Mas {}

impl DebiasMethodSpec for Mas {
    fn tune(&self, start: &Classifier, ctx: &TuneContext) -> Result<Tuned, CoreError> {
        let model = trainable_frozen_bn(start);
        let omega = importance(
            &model,
            ctx.pretraining,
            ctx.normalization,
            ImportanceKind::Mas,
            Some(self.samples.get()),
            ctx.seed,
            ctx.device,
            ctx.progress,
        )?;
        let anchor = snapshot(&model);
        let lambda = self.lambda.get();
        let penalty =
            move |m: &Classifier| quadratic_penalty(m, &anchor, Some(&omega)).map(|p| p * lambda);
        tune_classifier(model, &self.optimizer, ctx, Box::new(penalty))
    }
}
