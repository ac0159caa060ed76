//! `der++`: Dark Experience Replay++ (Buzzega et al. 2020): a reservoir
//! buffer that also keeps the logits the model gave each example when it
//! was stored; every batch adds α·MSE(logits, stored logits) on one
//! replayed minibatch and β·cross-entropy on another. Each minibatch goes
//! through a forward pass of its own after the batch's, in training mode,
//! as Mammoth's `derpp.py` runs them (`passes: separate`, the default);
//! `passes: joint` appends both to the batch's pass instead, so batch norm
//! normalises one mixed batch (this project's earlier behaviour, kept
//! reachable: it was chosen when task-pure batch statistics seemed to hurt
//! evaluation). Defaults α = 0.1, β = 0.5.

use reusebench_core::bounded::{NonNegative, PositiveInt};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use super::er::learn_with_replay;
use super::replay::{BufferUpdate, DerPasses, ReplayLoss};
use super::{ContinualMethod, Learned, LpStage, ReplayBuffer, TaskContext};
use reusebench_core::model::Classifier;
use reusebench_core::train::OptimConfig;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DerPlusPlus {
    pub epochs: usize,
    pub optimizer: OptimConfig,
    pub buffer_size: PositiveInt,
    #[serde(default)]
    pub replay_batch_size: Option<PositiveInt>,
    /// Weight of the logit-matching term.
    #[serde(default = "default_alpha")]
    pub alpha: NonNegative,
    /// Weight of the replayed cross-entropy.
    #[serde(default = "default_beta")]
    pub beta: NonNegative,
    /// How the replayed minibatches reach the model.
    #[serde(default)]
    pub passes: DerPasses,
    #[serde(default)]
    pub lp: Option<LpStage>,
}

fn default_alpha() -> NonNegative {
    NonNegative::of(0.1)
}
fn default_beta() -> NonNegative {
    NonNegative::of(0.5)
}

super::probe_then_fine_tune!(DerPlusPlus);

impl ContinualMethod for DerPlusPlus {
    type State = Option<Box<(ReplayBuffer, ChaCha8Rng)>>;
    fn learn_task(&self, state: &mut Self::State, model: Classifier, ctx: &TaskContext) -> Learned {
        learn_with_replay(
            state,
            self.buffer_size,
            self.replay_batch_size,
            ReplayLoss::DerPlusPlus {
                alpha: self.alpha.get(),
                beta: self.beta.get(),
                passes: self.passes,
            },
            // DER stores the logits an example had when it was seen.
            BufferUpdate::Reservoir,
            self.training(),
            model,
            ctx,
        )
    }
}
