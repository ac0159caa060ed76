//! Helpers the integration tests of several crates share (core's and the
//! protocols'): small, deterministic, no fixtures on disk.

use std::sync::Arc;

use burn::module::Module;
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

/// A side-tuned classifier for tests: a width-4 base (frozen when
/// `frozen`), a 3-way head, a width-2 side network, blend `alpha`; drawn
/// in that order from one stream seeded with `seed`.
pub fn tiny_side_tuned(seed: u64, alpha: f64, frozen: bool, device: &Device) -> Classifier {
    let config = BackboneConfig {
        width: 4,
        ..Default::default()
    };
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut backbone = config.build(&mut rng, device);
    if frozen {
        backbone = backbone.freeze();
    }
    let head = linear_head(&mut rng, config.feature_dim(), 3, device);
    let side = crate::model::SideNet::random(2, config.feature_dim(), &mut rng, device);
    Classifier::new(backbone, head).with_side(side, alpha)
}

/// [`plain_stage`] in batches of 4, named `name`, its curve into `log`.
pub fn logged_stage<'a>(
    name: &str,
    log: &'a crate::train::CurveLog,
    optim: &'a OptimConfig,
    normalization: Normalization,
    num_classes: usize,
) -> Stage<'a> {
    let coords = Default::default();
    Stage {
        name: name.into(),
        curve: Some(crate::train::CurveSink { log, coords }),
        ..plain_stage(optim, 4, normalization, num_classes)
    }
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
            prefetch: 1,
            ..BatchPlan::in_order(batch_size, normalization)
        },
    )
    .next()
    .expect("a non-empty set");
    let x = Tensor::<4>::from_data(TensorData::new(batch.images, batch.shape), device);
    (x, batch.labels)
}
