//! Helpers the integration tests of several crates share (core's and the
//! protocols'): small, deterministic, no fixtures on disk.

use std::sync::Arc;

use burn::tensor::{Device, Tensor, TensorData};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use reusebench_data::{Augment, BatchIter, BatchPlan, ImageSet, Normalization};

use crate::backbone::BackboneConfig;
use crate::model::{Classifier, linear_head};
use crate::train::{OptimConfig, Stage};

/// A CIFAR ResNet-18 of `width` with a `classes`-way head, both drawn from
/// one stream seeded with `seed` (the backbone first).
pub fn tiny_classifier(width: usize, classes: usize, seed: u64, device: &Device) -> Classifier {
    let config = BackboneConfig {
        width,
        ..Default::default()
    };
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let backbone = config.build(&mut rng, device);
    let head = linear_head(&mut rng, config.feature_dim(), classes, device);
    Classifier::new(backbone, head)
}

/// One epoch in batches of `batch_size`, un-augmented, seed 0, no curve;
/// a test changes what it needs with `Stage { .., ..plain_stage(..) }`.
pub fn plain_stage(
    optim: &OptimConfig,
    batch_size: usize,
    normalization: Normalization,
    num_classes: usize,
) -> Stage<'_> {
    Stage {
        name: "test".into(),
        epochs: 1,
        batch_size,
        optim,
        augment: Augment::NONE,
        normalization,
        num_classes,
        seed: 0,
        curve: None,
    }
}

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
