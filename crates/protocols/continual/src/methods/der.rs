//! `der++`: Dark Experience Replay++ (Buzzega et al. 2020): a reservoir
//! buffer that also keeps the logits the model gave each example when it
//! was stored; every batch adds α·MSE(logits, stored logits) on one
//! replayed minibatch and β·cross-entropy on another. Both minibatches go
//! through one forward pass with the current batch (Mammoth runs three; one
//! pass keeps batch norm's statistics from task-pure batches, which broke
//! evaluation here). Defaults α = 0.1, β = 0.5.

use reusebench_core::method::Method;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use super::er::{learn_with_replay, validate_replay};
use super::replay::ReplayLoss;
use super::{ContinualMethod, LpStage, ReplayBuffer, TaskContext};
use reusebench_core::CoreError;
use reusebench_core::model::Classifier;
use reusebench_core::train::OptimConfig;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DerPlusPlus {
    pub epochs: usize,
    pub optimizer: OptimConfig,
    pub buffer_size: usize,
    #[serde(default)]
    pub replay_batch_size: Option<usize>,
    /// Weight of the logit-matching term.
    #[serde(default = "default_alpha")]
    pub alpha: f64,
    /// Weight of the replayed cross-entropy.
    #[serde(default = "default_beta")]
    pub beta: f64,
    #[serde(default)]
    pub lp: Option<LpStage>,
}

fn default_alpha() -> f64 {
    0.1
}
fn default_beta() -> f64 {
    0.5
}

impl Method for DerPlusPlus {
    fn label(&self, name: &'static str) -> String {
        super::lp_label(name, &self.lp)
    }


    fn validate(&self) -> Result<(), CoreError> {
        validate_replay(
            &self.optimizer,
            &self.lp,
            self.buffer_size,
            self.replay_batch_size,
        )?;
        if self.alpha.is_nan() || self.alpha < 0.0 {
            return Err(CoreError::config("method.alpha", "must be >= 0"));
        }
        if self.beta.is_nan() || self.beta < 0.0 {
            return Err(CoreError::config("method.beta", "must be >= 0"));
        }
        Ok(())
    }
}

impl ContinualMethod for DerPlusPlus {
    type State = Option<Box<(ReplayBuffer, ChaCha8Rng)>>;
    fn learn_task(
        &self,
        state: &mut Self::State,
        model: Classifier,
        ctx: &TaskContext,
    ) -> Result<Classifier, CoreError> {
        learn_with_replay(
            state,
            self.buffer_size,
            self.replay_batch_size,
            ReplayLoss::DerPlusPlus {
                alpha: self.alpha,
                beta: self.beta,
            },
            &self.lp,
            self.epochs,
            &self.optimizer,
            model,
            ctx,
        )
    }
}
