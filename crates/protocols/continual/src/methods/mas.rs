//! `mas`: Memory Aware Synapses (Aljundi et al. 2018). After each task the
//! importance Ω_k = mean over the task's training samples of
//! |∂‖f(x)‖²/∂θ_k| (f = the classifier's logits; see `penalties`), merged
//! with the earlier tasks' as a running average Ω ← α·Ω_old + (1 − α)·Ω_new
//! (Avalanche's default α = 0.5); later tasks add λ·Σ_k Ω_k (θ_k − θ*_k)²
//! with θ* the weights after the previous task.

use reusebench_core::method::Method;
use serde::{Deserialize, Serialize};

use super::{ContinualMethod, LpStage, TaskContext, learn_with_importance};
use reusebench_core::CoreError;
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
    pub lambda: f64,
    /// Weight of the old importance in the running average.
    #[serde(default = "default_alpha")]
    pub alpha: f64,
    /// Estimate the importance on this many samples per task (a seeded
    /// subset); every training sample when absent.
    #[serde(default)]
    pub importance_samples: Option<usize>,
    /// Optional linear probe before each task's training.
    #[serde(default)]
    pub lp: Option<LpStage>,
}

fn default_lambda() -> f64 {
    1.0
}
fn default_alpha() -> f64 {
    0.5
}

impl Method for Mas {
    fn label(&self, name: &'static str) -> String {
        super::lp_label(name, &self.lp)
    }


    fn validate(&self) -> Result<(), CoreError> {
        self.optimizer.validate("method.optimizer")?;
        if let Some(lp) = &self.lp {
            lp.validate()?;
        }
        if self.lambda.is_nan() || self.lambda < 0.0 {
            return Err(CoreError::config("method.lambda", "must be >= 0"));
        }
        if !(0.0..=1.0).contains(&self.alpha) {
            return Err(CoreError::config("method.alpha", "must be in [0, 1]"));
        }
        Ok(())
    }
}

impl ContinualMethod for Mas {
    type State = Option<(ParamTable, ParamTable)>;
    fn learn_task(
        &self,
        state: &mut Self::State,
        model: Classifier,
        ctx: &TaskContext,
    ) -> Result<Classifier, CoreError> {
        let alpha = self.alpha;
        learn_with_importance(
            state,
            ImportanceKind::Mas,
            self.importance_samples,
            self.lambda,
            |mut old, new| {
                let scaled = new
                    .into_iter()
                    .map(|(k, v)| (k, v * (1.0 - alpha)))
                    .collect();
                accumulate(&mut old, scaled, alpha);
                old
            },
            &self.lp,
            self.epochs,
            &self.optimizer,
            model,
            ctx,
        )
    }
}
