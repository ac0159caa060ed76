//! A training set smaller than one batch is an error, never zero steps in
//! silence (the loop drops the last partial batch).

use std::sync::Arc;

use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use reusebench_core::backbone::BackboneConfig;
use reusebench_core::model::{Classifier, linear_head};
use reusebench_core::train::{NoHooks, OptimConfig, Stage, fit};
use reusebench_core::{CoreError, DeviceSpec, NoProgress};
use reusebench_data::{Augment, synthetic};

#[test]
fn a_set_smaller_than_a_batch_is_an_error() {
    let dev = DeviceSpec::for_tests().autodiff();
    let data = synthetic::generate(3, 1, 1, 0).unwrap();
    let set = Arc::new(data.train);
    let cfg = BackboneConfig {
        width: 2,
        ..Default::default()
    };
    let mut rng = ChaCha8Rng::seed_from_u64(0);
    let model = Classifier::new(
        cfg.build(&mut rng, &dev),
        linear_head(&mut rng, cfg.feature_dim(), 3, &dev),
    );
    let optim = OptimConfig {
        lr: 0.1,
        momentum: 0.0,
        weight_decay: 0.0,
        schedule: Default::default(),
    };
    let stage = Stage {
        name: "task 1/2 · fine-tune".into(),
        epochs: 1,
        batch_size: 4,
        optim: &optim,
        augment: Augment::NONE,
        normalization: data.normalization,
        num_classes: 3,
        seed: 0,
        curve: None,
    };
    let err = fit(model, &set, &stage, &mut NoHooks, &dev, &NoProgress).unwrap_err();
    match &err {
        CoreError::Config { key, message } => {
            assert_eq!(key, "batch_size");
            assert!(
                message.contains("task 1/2") && message.contains("3 training image(s)"),
                "{message}"
            );
        }
        other => panic!("{other}"),
    }
}
