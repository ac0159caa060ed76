//! `ewc`: online EWC (Schwarz et al. 2018, after Kirkpatrick et al. 2017).
//! After each task the diagonal empirical Fisher F_new = mean over the
//! task's samples of (∂ log p(y|x)/∂θ_k)² is merged as F ← γ·F + F_new;
//! later tasks add (λ/2)·Σ_k F_k (θ_k − θ*_k)² with θ* the weights after the
//! previous task.

use serde::{Deserialize, Serialize};

use super::{ContinualMethod, LpStage, TaskContext, learn_with_importance};
use crate::error::CoreError;
use crate::model::Classifier;
use crate::penalties::{ImportanceKind, ParamTable, accumulate};
use crate::train::OptimConfig;

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
}

fn default_gamma() -> f64 {
    1.0
}

impl ContinualMethod for Ewc {
    type State = Option<(ParamTable, ParamTable)>;

    fn validate(&self) -> Result<(), CoreError> {
        self.optimizer.validate("method.optimizer")?;
        if let Some(lp) = &self.lp {
            lp.validate()?;
        }
        if self.lambda.is_nan() || self.lambda < 0.0 {
            return Err(CoreError::config("method.lambda", "must be >= 0"));
        }
        if !(0.0..=1.0).contains(&self.gamma) {
            return Err(CoreError::config("method.gamma", "must be in [0, 1]"));
        }
        Ok(())
    }

    fn learn_task(
        &self,
        state: &mut Self::State,
        model: Classifier,
        ctx: &TaskContext,
    ) -> Result<Classifier, CoreError> {
        let gamma = self.gamma;
        learn_with_importance(
            state,
            ImportanceKind::Fisher,
            self.fisher_samples,
            self.lambda / 2.0,
            |mut old, new| {
                accumulate(&mut old, new, gamma);
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
