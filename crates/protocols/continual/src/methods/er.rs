//! `er`: experience replay from a reservoir buffer (Chaudhry et al. 2019,
//! as in Mammoth's `er.py`): every batch gets a minibatch drawn from the
//! buffer appended (one forward pass over both) and the loss is one mean
//! cross-entropy over the concatenated batch; the buffer is filled by
//! reservoir sampling over every batch seen. (Before this followed Mammoth,
//! the two means were summed, which doubled the gradient.)

use reusebench_core::bounded::PositiveInt;
use reusebench_core::{Purpose, Seeds};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use super::replay::{ReplayHook, ReplayLoss};
use super::{ContinualMethod, Learned, LpStage, ReplayBuffer, TaskContext, Training};
use reusebench_core::model::Classifier;
use reusebench_core::train::OptimConfig;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Er {
    pub epochs: usize,
    pub optimizer: OptimConfig,
    /// Examples the buffer holds.
    pub buffer_size: PositiveInt,
    /// Replayed examples per batch; the training batch size when absent.
    #[serde(default)]
    pub replay_batch_size: Option<PositiveInt>,
    #[serde(default)]
    pub lp: Option<LpStage>,
}

/// The shared task loop of the replay methods.
pub(crate) fn learn_with_replay(
    state: &mut Option<Box<(ReplayBuffer, ChaCha8Rng)>>,
    buffer_size: PositiveInt,
    replay_batch_size: Option<PositiveInt>,
    loss: ReplayLoss,
    training: Training,
    model: Classifier,
    ctx: &TaskContext,
) -> Learned {
    let set = &ctx.train;
    let (buffer, rng) = &mut **state.get_or_insert_with(|| {
        Box::new((
            ReplayBuffer::new(buffer_size.get(), [set.channels, set.height, set.width]),
            Seeds::new(ctx.seed).rng(Purpose::ReplayBuffer),
        ))
    });
    let mut hook = ReplayHook::new(
        buffer,
        set,
        rng,
        replay_batch_size.map_or(ctx.batch_size, PositiveInt::get),
        loss,
    );
    training.run(model, ctx, &mut hook)
}

super::probe_then_fine_tune!(Er);

impl ContinualMethod for Er {
    type State = Option<Box<(ReplayBuffer, ChaCha8Rng)>>;
    fn learn_task(&self, state: &mut Self::State, model: Classifier, ctx: &TaskContext) -> Learned {
        learn_with_replay(
            state,
            self.buffer_size,
            self.replay_batch_size,
            ReplayLoss::Er,
            self.training(),
            model,
            ctx,
        )
    }
}
