//! A random reference's batch-norm statistics are recomputed on the task's
//! data: the stem's running mean is the mean of the stem convolution's
//! output over the whole set, not the initial 0.

use std::sync::Arc;

use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use reusebench_core::DeviceSpec;
use reusebench_core::backbone::BackboneConfig;
use reusebench_core::features::recompute_batch_norm;
use reusebench_data::synthetic;

/// The running mean of the stem's batch norm.
fn stem_running_mean(backbone: &reusebench_core::backbone::Backbone) -> Vec<f32> {
    let mean = backbone.as_resnet().unwrap().bn1.running_mean.value_sync();
    mean.into_data().try_to_vec::<f32>().unwrap()
}

#[test]
fn running_statistics_are_the_mean_over_the_set() {
    let dev = DeviceSpec::for_tests().autodiff();
    let data = synthetic::generate(2, 4, 1, 0).unwrap();
    let set = Arc::new(data.train);
    let cfg = BackboneConfig {
        width: 2,
        ..Default::default()
    };
    let backbone = cfg.build(&mut ChaCha8Rng::seed_from_u64(3), &dev);
    let before = stem_running_mean(&backbone);
    assert!(before.iter().all(|&m| m == 0.0));

    // Every image at once through the stem convolution: the per-channel mean.
    let (x, _) = reusebench_core::testing::first_batch(&set, set.len(), data.normalization, &dev);
    let y = backbone.as_resnet().unwrap().conv1.forward(x);
    let [n, c, h, w] = y.dims();
    let want: Vec<f32> = y
        .swap_dims(0, 1)
        .reshape([c, n * h * w])
        .mean_dim(1)
        .into_data()
        .try_to_vec::<f32>()
        .unwrap();

    // Two batches of 4: the mean of the two batch means is the set's mean.
    let backbone = recompute_batch_norm(backbone, &set, 4, data.normalization, &dev);
    let got = stem_running_mean(&backbone);
    for (g, w) in got.iter().zip(&want) {
        assert!(
            (g - w).abs() < 1e-4 * w.abs().max(1.0),
            "{got:?} vs {want:?}"
        );
    }
    assert_eq!(
        backbone.as_resnet().unwrap().bn1.momentum,
        0.1,
        "the layer's momentum is put back"
    );
}
