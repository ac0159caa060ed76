//! `sgd`: naive sequential fine-tuning, the lower reference of continual learning.

use serde::{Deserialize, Serialize};

use super::{ContinualMethod, TaskContext};
use crate::error::CoreError;
use crate::model::Classifier;
use crate::train::{NoHooks, OptimConfig};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Sgd {
    /// Epochs per task.
    pub epochs: usize,
    pub optimizer: OptimConfig,
}

impl ContinualMethod for Sgd {
    type State = ();

    fn validate(&self) -> Result<(), CoreError> {
        self.optimizer.validate("method.optimizer")
    }

    fn learn_task(
        &self,
        _state: &mut Self::State,
        model: Classifier,
        ctx: &TaskContext,
    ) -> Result<Classifier, CoreError> {
        ctx.fine_tune(model, self.epochs, &self.optimizer, &mut NoHooks)
    }
}
