//! `sgd`: naive sequential fine-tuning, the lower reference of continual learning.

use reusebench_core::method::Method;
use serde::{Deserialize, Serialize};

use super::{ContinualMethod, TaskContext};
use reusebench_core::CoreError;
use reusebench_core::model::Classifier;
use reusebench_core::train::{NoHooks, OptimConfig};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Sgd {
    /// Epochs per task.
    pub epochs: usize,
    pub optimizer: OptimConfig,
}

impl Method for Sgd {
    fn validate(&self) -> Result<(), CoreError> {
        self.optimizer.validate("method.optimizer")
    }
}

impl ContinualMethod for Sgd {
    type State = ();
    fn learn_task(
        &self,
        _state: &mut Self::State,
        model: Classifier,
        ctx: &TaskContext,
    ) -> Result<Classifier, CoreError> {
        ctx.fine_tune(model, self.epochs, &self.optimizer, &mut NoHooks)
    }
}
