//! What the continual tests share: a task's context with the tests'
//! settings, and the loss a stage's curve recorded.

use std::sync::Arc;

use burn::tensor::Device;
use reusebench_continual::methods::TaskContext;
use reusebench_core::NoProgress;
use reusebench_core::feature_cache::FeatureCache;
use reusebench_core::metrics::names;
use reusebench_core::train::CurveLog;
use reusebench_data::{Augment, ImageSet, Normalization};

/// Task `task` of `num_tasks`, trained on the last set of `history`, with
/// `[old, seen, all]` classes; batches of 4 (8 to evaluate), no
/// augmentation, seed 0.
pub fn task_context<'a>(
    (task, num_tasks): (usize, usize),
    history: &'a [Arc<ImageSet>],
    [old_classes, seen_classes, num_classes]: [usize; 3],
    normalization: Normalization,
    device: &'a Device,
    features: &'a FeatureCache,
    curves: &'a CurveLog,
) -> TaskContext<'a> {
    TaskContext {
        task,
        num_tasks,
        train: Arc::clone(history.last().expect("a task's own set")),
        history,
        old_classes,
        seen_classes,
        num_classes,
        batch_size: 4,
        eval_batch_size: 8,
        augment: Augment::NONE,
        normalization,
        seed: 0,
        device,
        features,
        progress: &NoProgress,
        curves,
    }
}

/// The mean loss of the first epoch `log` recorded (and empties it).
pub fn first_epoch_loss(log: &CurveLog) -> f64 {
    let rows = log.take();
    rows.iter()
        .find(|r| r.metric == names::CURVE_LOSS)
        .expect("a curve row")
        .value
}
