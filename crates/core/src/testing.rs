//! Helpers the integration tests of several crates share (core's and the
//! protocols'): small, deterministic, no fixtures on disk.

use std::sync::Arc;

use burn::tensor::{Device, Tensor, TensorData};
use reusebench_data::{Augment, BatchIter, BatchPlan, ImageSet, Normalization};

/// The first `batch_size` images of `set` in order, un-augmented and
/// normalised as the training loop feeds them, with their labels.
pub fn first_batch(
    set: &Arc<ImageSet>,
    batch_size: usize,
    normalization: Normalization,
    device: &Device,
) -> (Tensor<4>, Vec<u32>) {
    let batch = BatchIter::new(
        Arc::clone(set),
        BatchPlan {
            batch_size,
            shuffle_seed: None,
            augment: Augment::NONE,
            normalization,
            prefetch: 1,
            drop_last: false,
        },
    )
    .next()
    .expect("a non-empty set");
    let x = Tensor::<4>::from_data(TensorData::new(batch.images, batch.shape), device);
    (x, batch.labels)
}
