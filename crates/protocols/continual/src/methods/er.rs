//! `er`: experience replay from a reservoir buffer (Chaudhry et al. 2019,
//! as in Mammoth's `er.py`): every batch gets a minibatch drawn from the
//! buffer appended (one forward pass over both) and the loss is one mean
//! cross-entropy over the concatenated batch; the buffer is filled by
//! reservoir sampling over every batch seen. (Before this followed Mammoth,
//! the two means were summed, which doubled the gradient.)
//! `buffer_update: experience-balanced` fills the buffer after each task
//! instead, split equally among the tasks (Avalanche's `Replay`): the
//! difference that made our ER forget more than Avalanche's in
//! `scripts/compare_avalanche.py` (see docs/continual.md).

use reusebench_core::bounded::PositiveInt;
use reusebench_core::{Purpose, Seeds};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use super::replay::{BufferUpdate, ReplayHook, ReplayLoss};
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
    /// Reservoir sampling during training (Mammoth, the default) or an
    /// experience-balanced update after each task (Avalanche).
    #[serde(default)]
    pub buffer_update: BufferUpdate,
    #[serde(default)]
    pub lp: Option<LpStage>,
}

/// The shared task loop of the replay methods.
pub(crate) fn learn_with_replay(
    state: &mut Option<Box<(ReplayBuffer, ChaCha8Rng)>>,
    buffer_size: PositiveInt,
    replay_batch_size: Option<PositiveInt>,
    loss: ReplayLoss,
    update: BufferUpdate,
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
    hook.fill_during_training = update == BufferUpdate::Reservoir;
    let model = training.run(model, ctx, &mut hook)?;
    if update == BufferUpdate::ExperienceBalanced {
        buffer.add_task_balanced(rng, set);
    }
    Ok(model)
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
            self.buffer_update,
            self.training(),
            model,
            ctx,
        )
    }
}
