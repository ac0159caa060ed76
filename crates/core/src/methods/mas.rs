//! `mas`: Memory Aware Synapses (Aljundi et al. 2018). After each task the
//! importance Ω_k = mean over the task's training samples of
//! |∂‖f(x)‖²/∂θ_k| (f = the classifier's logits; see `penalties`), merged
//! with the earlier tasks' as a running average Ω ← α·Ω_old + (1 − α)·Ω_new
//! (Avalanche's default α = 0.5); later tasks add λ·Σ_k Ω_k (θ_k − θ*_k)²
//! with θ* the weights after the previous task.

use serde::{Deserialize, Serialize};

use super::{ContinualMethod, LpStage, RunState, TaskContext};
use crate::error::CoreError;
use crate::model::Classifier;
use crate::penalties::{
    ImportanceKind, ParamTable, QuadraticPenalty, accumulate, importance, snapshot,
};
use crate::train::{NoHooks, OptimConfig};

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
    #[serde(skip)]
    state: RunState<(ParamTable, ParamTable)>,
}

fn default_lambda() -> f64 {
    1.0
}
fn default_alpha() -> f64 {
    0.5
}

impl ContinualMethod for Mas {
    fn validate(&self) -> Result<(), CoreError> {
        self.optimizer.validate("method.optimizer")?;
        if let Some(lp) = &self.lp {
            lp.validate()?;
        }
        if !(self.lambda >= 0.0 && (0.0..=1.0).contains(&self.alpha)) {
            return Err(CoreError::Config(
                "method.lambda must be >= 0 and method.alpha in [0, 1]".into(),
            ));
        }
        Ok(())
    }

    fn learn_task(
        &mut self,
        model: Classifier,
        ctx: &TaskContext,
    ) -> Result<Classifier, CoreError> {
        let model = LpStage::run(&self.lp, model, ctx)?;
        let model = match &self.state.0 {
            Some((omega, anchor)) => ctx.fine_tune(
                model,
                self.epochs,
                &self.optimizer,
                &mut QuadraticPenalty {
                    anchor,
                    weights: Some(omega),
                    scale: self.lambda,
                },
            )?,
            None => ctx.fine_tune(model, self.epochs, &self.optimizer, &mut NoHooks)?,
        };
        let new = importance(
            &model,
            &ctx.train,
            ctx.normalization,
            ImportanceKind::Mas,
            self.importance_samples,
            ctx.seed ^ ctx.task as u64,
            ctx.device,
            ctx.progress,
        )?;
        let omega = match self.state.0.take() {
            Some((mut old, _)) => {
                let scaled = new
                    .into_iter()
                    .map(|(k, v)| (k, v * (1.0 - self.alpha)))
                    .collect();
                accumulate(&mut old, scaled, self.alpha);
                old
            }
            None => new,
        };
        self.state.0 = Some((omega, snapshot(&model)));
        Ok(model)
    }
}
