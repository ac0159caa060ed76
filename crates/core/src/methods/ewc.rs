//! `ewc`: online EWC (Schwarz et al. 2018, after Kirkpatrick et al. 2017).
//! After each task the diagonal empirical Fisher F_new = mean over the
//! task's samples of (∂ log p(y|x)/∂θ_k)² is merged as F ← γ·F + F_new;
//! later tasks add (λ/2)·Σ_k F_k (θ_k − θ*_k)² with θ* the weights after the
//! previous task.

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
pub struct Ewc {
    pub epochs: usize,
    pub optimizer: OptimConfig,
    /// λ, the penalty's weight (no default: it depends on the data's scale).
    pub lambda: f64,
    /// Decay of the old Fisher (1 = plain sum over tasks).
    #[serde(default = "default_gamma")]
    pub gamma: f64,
    /// Estimate the Fisher on this many samples per task; all when absent.
    #[serde(default)]
    pub fisher_samples: Option<usize>,
    #[serde(default)]
    pub lp: Option<LpStage>,
    #[serde(skip)]
    state: RunState<(ParamTable, ParamTable)>,
}

fn default_gamma() -> f64 {
    1.0
}

impl ContinualMethod for Ewc {
    fn validate(&self) -> Result<(), CoreError> {
        self.optimizer.validate("method.optimizer")?;
        if let Some(lp) = &self.lp {
            lp.validate()?;
        }
        if !(self.lambda >= 0.0 && (0.0..=1.0).contains(&self.gamma)) {
            return Err(CoreError::Config(
                "method.lambda must be >= 0 and method.gamma in [0, 1]".into(),
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
            Some((fisher, anchor)) => ctx.fine_tune(
                model,
                self.epochs,
                &self.optimizer,
                &mut QuadraticPenalty {
                    anchor,
                    weights: Some(fisher),
                    scale: self.lambda / 2.0,
                },
            )?,
            None => ctx.fine_tune(model, self.epochs, &self.optimizer, &mut NoHooks)?,
        };
        let new = importance(
            &model,
            &ctx.train,
            ctx.normalization,
            ImportanceKind::Fisher,
            self.fisher_samples,
            ctx.seed ^ ctx.task as u64,
            ctx.device,
            ctx.progress,
        )?;
        let fisher = match self.state.0.take() {
            Some((mut old, _)) => {
                accumulate(&mut old, new, self.gamma);
                old
            }
            None => new,
        };
        self.state.0 = Some((fisher, snapshot(&model)));
        Ok(model)
    }
}
