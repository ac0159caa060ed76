//! `er`: experience replay from a reservoir buffer (Chaudhry et al. 2019,
//! as in Mammoth's `er.py`): every batch gets a minibatch drawn from the
//! buffer appended (one forward pass over both) and the loss is one mean
//! cross-entropy over the concatenated batch; the buffer is filled by
//! reservoir sampling over every batch seen. (Before this followed Mammoth,
//! the two means were summed, which doubled the gradient.)

use reusebench_core::{Purpose, Seeds};
use reusebench_core::method::Method;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use super::replay::{ReplayHook, ReplayLoss};
use super::{ContinualMethod, LpStage, ReplayBuffer, TaskContext};
use reusebench_core::CoreError;
use reusebench_core::model::Classifier;
use reusebench_core::train::OptimConfig;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Er {
    pub epochs: usize,
    pub optimizer: OptimConfig,
    /// Examples the buffer holds.
    pub buffer_size: usize,
    /// Replayed examples per batch; the training batch size when absent.
    #[serde(default)]
    pub replay_batch_size: Option<usize>,
    #[serde(default)]
    pub lp: Option<LpStage>,
}

/// The shared task loop of the replay methods.
pub(crate) fn learn_with_replay(
    state: &mut Option<Box<(ReplayBuffer, ChaCha8Rng)>>,
    buffer_size: usize,
    replay_batch_size: Option<usize>,
    loss: ReplayLoss,
    lp: &Option<LpStage>,
    epochs: usize,
    optimizer: &OptimConfig,
    model: Classifier,
    ctx: &TaskContext,
) -> Result<Classifier, CoreError> {
    let model = LpStage::run(lp, model, ctx)?;
    let set = &ctx.train;
    let (buffer, rng) = &mut **state.get_or_insert_with(|| {
        Box::new((
            ReplayBuffer::new(buffer_size, [set.channels, set.height, set.width]),
            Seeds::new(ctx.seed).rng(Purpose::ReplayBuffer),
        ))
    });
    let mut hook = ReplayHook::new(
        buffer,
        set,
        rng,
        replay_batch_size.unwrap_or(ctx.batch_size),
        loss,
    );
    ctx.fine_tune(model, epochs, optimizer, &mut hook)
}

pub(crate) fn validate_replay(
    optimizer: &OptimConfig,
    lp: &Option<LpStage>,
    buffer_size: usize,
    replay_batch_size: Option<usize>,
) -> Result<(), CoreError> {
    optimizer.validate("method.optimizer")?;
    if let Some(lp) = lp {
        lp.validate()?;
    }
    if buffer_size == 0 || replay_batch_size == Some(0) {
        return Err(CoreError::config(
            if buffer_size == 0 {
                "method.buffer_size"
            } else {
                "method.replay_batch_size"
            },
            "must be >= 1",
        ));
    }
    Ok(())
}

impl Method for Er {
    fn label(&self, name: &'static str) -> String {
        super::lp_label(name, &self.lp)
    }


    fn validate(&self) -> Result<(), CoreError> {
        validate_replay(
            &self.optimizer,
            &self.lp,
            self.buffer_size,
            self.replay_batch_size,
        )
    }
}

impl ContinualMethod for Er {
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
            ReplayLoss::Er,
            &self.lp,
            self.epochs,
            &self.optimizer,
            model,
            ctx,
        )
    }
}
