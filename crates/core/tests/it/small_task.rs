//! A training set smaller than one batch is an error, never zero steps in
//! silence (the loop drops the last partial batch).

use std::sync::Arc;

use reusebench_core::testing::{plain_stage, tiny_classifier};
use reusebench_core::train::{NoHooks, OptimConfig, Stage, fit};
use reusebench_core::{CoreError, DeviceSpec, NoProgress};
use reusebench_data::synthetic;

#[test]
fn a_set_smaller_than_a_batch_is_an_error() {
    let dev = DeviceSpec::for_tests().autodiff();
    let data = synthetic::generate(3, 1, 1, 0).unwrap();
    let set = Arc::new(data.train);
    let model = tiny_classifier(2, 3, 0, &dev);
    let optim = OptimConfig::sgd(0.1).with_momentum(0.0);
    let stage = Stage {
        name: "task 1/2 · fine-tune".into(),
        ..plain_stage(&optim, 4, data.normalization, 3)
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
