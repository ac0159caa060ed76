//! `joint`: the upper reference, as Mammoth's `models/joint.py` defines it.
//! Nothing is trained while the tasks arrive; after the last task, the
//! model trains once on the union of every task's training data, from the
//! starting weights. (The accuracy matrix's earlier rows are those of the
//! untrained start; the final row is what joint training reaches.)

use reusebench_core::method::Method;
use std::sync::Arc;

use reusebench_data::ImageSet;
use serde::{Deserialize, Serialize};

use super::{ContinualMethod, Learned, TaskContext};
use reusebench_core::model::Classifier;
use reusebench_core::train::{NoHooks, OptimConfig};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Joint {
    /// Epochs over the union, after the last task.
    pub epochs: usize,
    pub optimizer: OptimConfig,
}

/// All images of `sets`, in order.
pub fn union(sets: &[Arc<ImageSet>]) -> ImageSet {
    let first = &sets[0];
    let mut all = ImageSet::empty(first.channels, first.height, first.width);
    for set in sets {
        for i in 0..set.len() {
            all.push_from(set, i, set.labels[i]);
        }
    }
    all
}

impl Method for Joint {}

impl ContinualMethod for Joint {
    type State = ();
    fn learn_task(&self, _: &mut (), model: Classifier, ctx: &TaskContext) -> Learned {
        if ctx.task + 1 < ctx.num_tasks {
            return Ok(model);
        }
        let data = Arc::new(union(ctx.history));
        ctx.fine_tune_on(model, &data, self.epochs, &self.optimizer, &mut NoHooks)
    }
}
