//! `cumulative`: at task t the model trains on the union of the training
//! data of tasks 0..=t, continuing from the model after task t − 1. (What
//! `joint` meant before it followed Mammoth: a useful reference of its own,
//! retraining on everything seen at every task.)

use reusebench_core::method::Method;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use super::joint::union;
use super::{ContinualMethod, Learned, TaskContext};
use reusebench_core::model::Classifier;
use reusebench_core::train::{NoHooks, OptimConfig};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Cumulative {
    /// Epochs over the union at every task.
    pub epochs: usize,
    pub optimizer: OptimConfig,
}

impl Method for Cumulative {}

impl ContinualMethod for Cumulative {
    type State = ();
    fn learn_task(&self, _: &mut (), model: Classifier, ctx: &TaskContext) -> Learned {
        let data = Arc::new(union(ctx.history));
        ctx.fine_tune_on(model, &data, self.epochs, &self.optimizer, &mut NoHooks)
    }
}
