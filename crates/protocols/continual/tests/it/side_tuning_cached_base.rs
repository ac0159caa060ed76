//! Side-tuning's forward over cached base features computes what the full
//! forward computes.

use std::sync::Arc;

use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use reusebench_core::DeviceSpec;
use reusebench_core::feature_cache::FeatureCache;
use reusebench_core::features::cached_features;
use reusebench_core::model::Classifier;
use reusebench_data::synthetic;

#[test]
fn side_tuning_with_cached_base_computes_the_same_logits() {
    use burn::module::Module;
    use burn::tensor::{Tensor, TensorData};
    use reusebench_continual::methods::logits_with_base;
    let dev = DeviceSpec::for_tests();
    let model = reusebench_core::testing::tiny_side_tuned(1, 0.6, true, &dev);
    let model = model.valid();
    let data = synthetic::generate(3, 4, 1, 0).unwrap();
    let set = Arc::new(data.train);
    let cache = FeatureCache::default();
    let base = cached_features(
        &cache,
        &Classifier::new(model.backbone().clone(), model.head.clone()),
        &set,
        5,
        data.normalization,
        &dev,
    );
    let indices = [7usize, 2, 9];
    let n = set.image_len();
    let mut x = vec![0f32; indices.len() * n];
    let mut rng = ChaCha8Rng::seed_from_u64(0);
    for (k, &i) in indices.iter().enumerate() {
        reusebench_data::write_image(
            set.image(i),
            3,
            32,
            32,
            reusebench_data::Augment::NONE,
            &data.normalization,
            &mut rng,
            &mut x[k * n..(k + 1) * n],
        );
    }
    let x = Tensor::<4>::from_data(TensorData::new(x, [3, 3, 32, 32]), &dev);
    let want = model
        .forward(x.clone())
        .into_data()
        .try_into_vec::<f32>()
        .unwrap();
    let got = logits_with_base(&model, x, &base, &indices)
        .into_data()
        .try_into_vec::<f32>()
        .unwrap();
    for (a, b) in got.iter().zip(&want) {
        assert!((a - b).abs() < 1e-4, "{a} vs {b}");
    }
}
