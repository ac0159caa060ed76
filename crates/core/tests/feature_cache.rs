//! The feature cache returns what recomputing returns, and recomputes only
//! when the weights change.

use std::sync::Arc;

use burn::tensor::Device;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use reusebench_core::backbone::BackboneConfig;
use reusebench_core::feature_cache::FeatureCache;
use reusebench_core::features::{cached_features, model_features};
use reusebench_core::model::{Classifier, SideBranch, linear_head};
use reusebench_data::synthetic;

#[test]
fn cached_side_tuning_features_equal_recomputed_ones() {
    let dev = Device::flex();
    let cfg = BackboneConfig {
        width: 4,
        ..Default::default()
    };
    let side_cfg = BackboneConfig {
        width: 2,
        ..Default::default()
    };
    let mut rng = ChaCha8Rng::seed_from_u64(0);
    let backbone = cfg.build(&mut rng, &dev);
    let head = linear_head(&mut rng, cfg.feature_dim(), 3, &dev);
    let mut model = Classifier::new(backbone, head);
    model.side = Some(SideBranch {
        net: side_cfg.build(&mut rng, &dev),
        proj: linear_head(&mut rng, side_cfg.feature_dim(), cfg.feature_dim(), &dev),
        alpha: 0.3,
    });
    let data = synthetic::generate(3, 4, 2, 0).unwrap();
    let set = Arc::new(data.test);
    let cache = FeatureCache::default();
    let want = model_features(&model, &set, 4, data.normalization, &dev);
    let got = cached_features(&cache, &model, &set, 4, data.normalization, &dev);
    assert_eq!(got.dim, want.dim);
    for (a, b) in got.values.iter().zip(&want.values) {
        assert!((a - b).abs() < 1e-5, "{a} vs {b}");
    }
    assert_eq!(cache.stats().misses, 2, "base and side computed once each");

    // Another alpha: both branches come from the cache.
    model.side.as_mut().unwrap().alpha = 0.9;
    let again = cached_features(&cache, &model, &set, 4, data.normalization, &dev);
    assert_eq!(cache.stats().hits, 2);
    let want = model_features(&model, &set, 4, data.normalization, &dev);
    for (a, b) in again.values.iter().zip(&want.values) {
        assert!((a - b).abs() < 1e-5);
    }

    // New side weights: only the side branch is recomputed.
    let side = model.side.as_mut().unwrap();
    side.proj = linear_head(
        &mut ChaCha8Rng::seed_from_u64(9),
        side_cfg.feature_dim(),
        cfg.feature_dim(),
        &dev,
    );
    cached_features(&cache, &model, &set, 4, data.normalization, &dev);
    assert_eq!(cache.stats().misses, 3);
    assert_eq!(cache.stats().hits, 3);
}
