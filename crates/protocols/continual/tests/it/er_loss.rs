//! ER's loss is one mean cross-entropy over the current batch and the
//! replayed one concatenated (Mammoth's `er.py`), not the sum of two means.

use crate::common::first_epoch_loss;
use std::sync::Arc;

use burn::tensor::Tensor;
use burn::tensor::loss::cross_entropy_with_logits;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use reusebench_continual::methods::{ReplayBuffer, ReplayHook, ReplayLoss};
use reusebench_core::testing::{logged_stage, tiny_classifier};
use reusebench_core::train::{CurveLog, OptimConfig, fit, one_hot};
use reusebench_core::{DeviceSpec, NoProgress};
use reusebench_data::{Augment, synthetic};

#[test]
fn er_takes_one_mean_over_current_and_replayed_rows() {
    let dev = DeviceSpec::for_tests().autodiff();
    let data = synthetic::generate(4, 2, 1, 0).unwrap();
    // The task: 4 images of classes 2 and 3; the buffer: 4 of classes 0, 1.
    let task = Arc::new(data.train.select_classes(&|l| (l >= 2).then_some(l)));
    let old = data.train.select_classes(&|l| (l < 2).then_some(l));
    let mut buffer = ReplayBuffer::new(4, [old.channels, old.height, old.width]);
    let mut rng = ChaCha8Rng::seed_from_u64(5);
    for i in 0..old.len() {
        buffer.offer(&mut rng, old.image(i), old.labels[i], None);
    }
    let model = tiny_classifier(2, 4, 1, &dev);
    let optim = OptimConfig::sgd(0.1).with_momentum(0.0);
    let log = CurveLog::default();
    let stage = logged_stage("er", &log, &optim, data.normalization, 4);
    // The expected loss: cross-entropy of the model's (training-mode)
    // logits on the 8 images at once, one mean.
    let (x, batch_labels) =
        reusebench_core::testing::first_batch(&task, 4, data.normalization, &dev);
    let replay = buffer.batch(
        &[0, 1, 2, 3],
        Augment::NONE,
        &data.normalization,
        &mut rng,
        &dev,
    );
    let labels: Vec<u32> = batch_labels.iter().chain(&replay.labels).copied().collect();
    let all = model
        .clone()
        .forward(Tensor::cat(vec![x, replay.images], 0));
    let want =
        cross_entropy_with_logits(all, one_hot(&labels, 4, &dev)).into_scalar::<f32>() as f64;

    let mut hook_rng = ChaCha8Rng::seed_from_u64(9);
    let mut hook = ReplayHook::new(&mut buffer, &task, &mut hook_rng, 4, ReplayLoss::Er);
    fit(model, &task, &stage, &mut hook, &dev, &NoProgress).unwrap();
    let got = first_epoch_loss(&log);
    // One step: the epoch's mean loss is that step's loss. Summing the
    // two means instead would give about twice this.
    assert!(
        (got - want).abs() < 1e-4 * want.abs().max(1.0),
        "fit's ER loss {got} vs one mean over the concatenated batch {want}"
    );
}

/// Reservoir ER offers every trained example to the buffer during the
/// task; with the experience-balanced update (Avalanche) training leaves
/// the buffer as it was, so only earlier tasks are replayed.
#[test]
fn only_the_reservoir_update_fills_the_buffer_during_training() {
    let dev = DeviceSpec::for_tests().autodiff();
    let data = synthetic::generate(4, 2, 1, 0).unwrap();
    let task = Arc::new(data.train.select_classes(&|l| (l >= 2).then_some(l)));
    let old = data.train.select_classes(&|l| (l < 2).then_some(l));
    let optim = OptimConfig::sgd(0.1).with_momentum(0.0);
    let stage = reusebench_core::testing::plain_stage(&optim, 4, data.normalization, 4);
    for fill in [true, false] {
        let mut buffer = ReplayBuffer::new(8, [old.channels, old.height, old.width]);
        let mut rng = ChaCha8Rng::seed_from_u64(5);
        buffer.add_task_balanced(&mut rng, &old);
        let before = (buffer.seen, buffer.labels.clone());
        let mut hook = ReplayHook::new(&mut buffer, &task, &mut rng, 4, ReplayLoss::Er);
        hook.fill_during_training = fill;
        let model = tiny_classifier(2, 4, 1, &dev);
        fit(model, &task, &stage, &mut hook, &dev, &NoProgress).unwrap();
        if fill {
            assert_eq!(buffer.seen, before.0 + task.len() as u64);
            assert!(
                buffer.labels.iter().any(|&l| l >= 2),
                "current task entered"
            );
        } else {
            assert_eq!((buffer.seen, buffer.labels.clone()), before);
        }
    }
    // The grid key.
    let er: reusebench_continual::methods::MethodConfig = serde_json::from_str(
        r#"{"name": "er", "epochs": 1, "optimizer": {"lr": 0.1}, "buffer_size": 8, "buffer_update": "experience-balanced"}"#,
    )
    .unwrap();
    assert!(format!("{er:?}").contains("ExperienceBalanced"), "{er:?}");
}
