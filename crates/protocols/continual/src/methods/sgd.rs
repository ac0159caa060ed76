//! `sgd`: naive sequential fine-tuning, the lower reference of continual learning.

use reusebench_core::method::Method;
use serde::{Deserialize, Serialize};

use super::{ContinualMethod, Learned, TaskContext};
use reusebench_core::model::Classifier;
use reusebench_core::train::{NoHooks, OptimConfig};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Sgd {
    /// Epochs per task.
    pub epochs: usize,
    pub optimizer: OptimConfig,
}

impl Method for Sgd {}

impl ContinualMethod for Sgd {
    type State = ();
    fn learn_task(&self, _: &mut (), model: Classifier, ctx: &TaskContext) -> Learned {
        ctx.fine_tune(model, self.epochs, &self.optimizer, &mut NoHooks)
    }
}
