//! The feature cache returns what recomputing returns, and recomputes only
//! when the weights change.

use std::sync::Arc;

use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use reusebench_core::DeviceSpec;
use reusebench_core::backbone::BackboneConfig;
use reusebench_core::feature_cache::FeatureCache;
use reusebench_core::features::{cached_features, features};
use reusebench_core::model::{Classifier, SideNet, linear_head};
use reusebench_data::synthetic;

#[test]
fn cached_side_tuning_features_equal_recomputed_ones() {
    let dev = DeviceSpec::for_tests();
    let mut model = reusebench_core::testing::tiny_side_tuned(0, 0.3, false, &dev);
    let data = synthetic::generate(3, 4, 2, 0).unwrap();
    let set = Arc::new(data.test);
    let cache = FeatureCache::default();
    let want = features(&model, &set, 4, data.normalization, &dev);
    let got = cached_features(&cache, &model, &set, 4, data.normalization, &dev);
    assert_eq!(got.dim, want.dim);
    for (a, b) in got.values.iter().zip(&want.values) {
        assert!((a - b).abs() < 1e-5, "{a} vs {b}");
    }
    assert_eq!(cache.stats().misses, 2, "base and side computed once each");

    // Another alpha: both branches come from the cache.
    model.side_tuned_mut().unwrap().alpha = 0.9;
    let again = cached_features(&cache, &model, &set, 4, data.normalization, &dev);
    assert_eq!(cache.stats().hits, 2);
    let want = features(&model, &set, 4, data.normalization, &dev);
    for (a, b) in again.values.iter().zip(&want.values) {
        assert!((a - b).abs() < 1e-5);
    }

    // New side weights: only the side branch is recomputed.
    let side = model.side_tuned_mut().unwrap();
    let [side_dim, base_dim] = side.side.proj.weight.dims();
    side.side.proj = linear_head(&mut ChaCha8Rng::seed_from_u64(9), side_dim, base_dim, &dev);
    cached_features(&cache, &model, &set, 4, data.normalization, &dev);
    assert_eq!(cache.stats().misses, 3);
    assert_eq!(cache.stats().hits, 3);
}

#[test]
fn a_learned_alpha_starts_at_one_half_trains_and_reaches_the_cached_blend() {
    use burn::optim::{GradientsParams, SgdConfig};
    use burn::tensor::loss::cross_entropy_with_logits;
    use burn::tensor::{Tensor, TensorData};
    use reusebench_core::train::one_hot;
    let dev = DeviceSpec::for_tests().autodiff();
    let cfg = BackboneConfig {
        width: 4,
        ..Default::default()
    };
    let mut rng = ChaCha8Rng::seed_from_u64(1);
    let backbone = cfg.build(&mut rng, &dev);
    let head = linear_head(&mut rng, cfg.feature_dim(), 3, &dev);
    let side = SideNet::random(2, cfg.feature_dim(), &mut rng, &dev);
    let model = Classifier::new(backbone, head).with_learned_side(side, &dev);
    assert_eq!(model.side_tuned().unwrap().alpha_value(), 0.5);

    let data = synthetic::generate(3, 4, 2, 0).unwrap();
    let set = Arc::new(data.test);
    let x: Vec<f32> = set.pixels.iter().map(|&p| p as f32 / 255.0).collect();
    let n = set.len();
    let x = Tensor::<4>::from_data(TensorData::new(x, [n, 3, set.height, set.width]), &dev);
    let loss = cross_entropy_with_logits(model.forward(x), one_hot(&set.labels, 3, &dev));
    let grads = GradientsParams::from_grads(loss.backward(), &model);
    let moved = SgdConfig::new().init().step(1.0, model, grads);
    let alpha = moved.side_tuned().unwrap().alpha_value();
    assert!(
        alpha != 0.5 && (0.0..1.0).contains(&alpha),
        "alpha trained: {alpha}"
    );

    // The cache's host blend uses the learned value.
    let plain = DeviceSpec::for_tests();
    let cache = FeatureCache::default();
    let want = features(&moved, &set, 4, data.normalization, &plain);
    let got = cached_features(&cache, &moved, &set, 4, data.normalization, &plain);
    for (a, b) in got.values.iter().zip(&want.values) {
        assert!((a - b).abs() < 1e-5, "{a} vs {b}");
    }
}
