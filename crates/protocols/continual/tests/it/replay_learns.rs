//! Replay must keep old classes: training on new classes only, with a
//! buffer of old ones, the model still classifies the buffer's images.

use std::sync::Arc;

use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use reusebench_continual::methods::{ReplayBuffer, ReplayHook, ReplayLoss};
use reusebench_core::DeviceSpec;
use reusebench_core::NoProgress;
use reusebench_core::backbone::BackboneConfig;
use reusebench_core::features::logits;
use reusebench_core::metrics::accuracy;
use reusebench_core::model::{Classifier, linear_head};
use reusebench_core::train::{NoHooks, OptimConfig, Stage, fit};
use reusebench_data::{Augment, synthetic};

/// Old-class accuracy (plain fine-tuning, ER) after training on the new
/// classes, from a model initialised with `seed`.
fn forgot_and_kept(seed: u64) -> (f64, f64) {
    let dev = DeviceSpec::for_tests().autodiff();
    let data = synthetic::generate(4, 40, 10, 0).unwrap();
    let old = Arc::new(data.train.select_classes(&|l| (l < 2).then_some(l)));
    let new = Arc::new(data.train.select_classes(&|l| (l >= 2).then_some(l)));
    let optim = OptimConfig::sgd(0.05);
    let stage = |epochs| Stage {
        name: "t".into(),
        epochs,
        batch_size: 16,
        optim: &optim,
        augment: Augment::STANDARD,
        normalization: data.normalization,
        num_classes: 4,
        seed: 0,
        curve: None,
    };
    let cfg = BackboneConfig {
        width: 8,
        ..Default::default()
    };
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let model = Classifier::new(
        cfg.build(&mut rng, &dev),
        linear_head(&mut rng, cfg.feature_dim(), 4, &dev),
    );
    let (model, _) = fit(model, &old, &stage(15), &mut NoHooks, &dev, &NoProgress).unwrap();
    let old_acc = |m: &Classifier| {
        let out = logits(m, &old, 64, data.normalization, &dev);
        accuracy(&out.values, out.dim, &old.labels)
    };
    let before = old_acc(&model);
    assert!(before > 90.0, "old classes learned first: {before}");

    let (plain, _) = fit(
        model.clone(),
        &new,
        &stage(5),
        &mut NoHooks,
        &dev,
        &NoProgress,
    )
    .unwrap();
    let mut buffer = ReplayBuffer::new(80, [3, 32, 32]);
    let mut brng = ChaCha8Rng::seed_from_u64(1);
    for i in 0..old.len() {
        buffer.offer(&mut brng, old.image(i), old.labels[i], None);
    }
    let mut hook = ReplayHook::new(&mut buffer, &new, &mut brng, 16, ReplayLoss::Er);
    let (replayed, _) = fit(model, &new, &stage(5), &mut hook, &dev, &NoProgress).unwrap();
    (old_acc(&plain), old_acc(&replayed))
}

#[test]
fn er_keeps_the_old_classes_that_plain_training_forgets() {
    // One run lands either way: which old class survives, if any, swings
    // with the floating-point details of the first steps (measured: ER kept
    // old classes in 3 of 8 initialisations with our convolution kernel, in
    // 2 of 4 with burn's; plain fine-tuning in none). So the claim is
    // checked on the mean over eight initialisations.
    let runs: Vec<(f64, f64)> = (0..8).map(forgot_and_kept).collect();
    let mean = |f: fn(&(f64, f64)) -> f64| runs.iter().map(f).sum::<f64>() / runs.len() as f64;
    let (forgot, kept) = (mean(|r| r.0), mean(|r| r.1));
    assert!(
        kept > forgot + 10.0,
        "replay {kept}% vs plain {forgot}% on the old classes (runs: {runs:?})"
    );
}
