//! `mas`: Memory Aware Synapses (Aljundi et al. 2018). After each task the
//! importance Ω_k = mean over the task's training samples of
//! |∂‖f(x)‖²/∂θ_k| (f = the classifier's logits; see `penalties`), merged
//! with the earlier tasks' as a running average Ω ← α·Ω_old + (1 − α)·Ω_new
//! (Avalanche's default α = 0.5); later tasks add λ·Σ_k Ω_k (θ_k − θ*_k)²
//! with θ* the weights after the previous task.

use reusebench_core::bounded::{NonNegative, Probability};
use serde::{Deserialize, Serialize};

use super::{ContinualMethod, Learned, LpStage, TaskContext, learn_with_importance};
use reusebench_core::model::Classifier;
use reusebench_core::penalties::{ImportanceKind, ParamTable, accumulate};
use reusebench_core::train::OptimConfig;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Mas {
    pub epochs: usize,
    pub optimizer: OptimConfig,
    /// λ, the penalty's weight.
    #[serde(default = "default_lambda")]
    pub lambda: NonNegative,
    /// Weight of the old importance in the running average.
    #[serde(default = "default_alpha")]
    pub alpha: Probability,
    /// Estimate the importance on this many samples per task (a seeded
    /// subset); every training sample when absent.
    #[serde(default)]
    pub importance_samples: Option<usize>,
    /// Optional linear probe before each task's training.
    #[serde(default)]
    pub lp: Option<LpStage>,
}

fn default_lambda() -> NonNegative {
    NonNegative::of(1.0)
}
fn default_alpha() -> Probability {
    Probability::of(0.5)
}

super::probe_then_fine_tune!(Mas);

impl ContinualMethod for Mas {
    type State = Option<(ParamTable, ParamTable)>;
    fn learn_task(&self, state: &mut Self::State, model: Classifier, ctx: &TaskContext) -> Learned {
        let alpha = self.alpha.get();
        learn_with_importance(
            state,
            ImportanceKind::Mas,
            self.importance_samples,
            self.lambda.get(),
            |mut old, new| {
                let scaled = new
                    .into_iter()
                    .map(|(k, v)| (k, v * (1.0 - alpha)))
                    .collect();
                accumulate(&mut old, scaled, alpha);
                old
            },
            self.training(),
            model,
            ctx,
        )
    }
}
