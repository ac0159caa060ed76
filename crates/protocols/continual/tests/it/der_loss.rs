//! DER++'s replay terms against a hand computation: α·MSE(f(b₁), z) +
//! β·CE(f(b₂), y), with f a forward pass of its own for each minibatch
//! (Mammoth's `derpp.py`, the default), or the rows of one pass over the
//! batch with both minibatches appended (`passes: joint`). Batch norm in
//! training mode makes the two differ, which the test checks too.

use std::sync::Arc;

use burn::tensor::Tensor;
use burn::tensor::loss::cross_entropy_with_logits;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use reusebench_continual::methods::{DerPasses, ReplayBuffer, ReplayHook, ReplayLoss};
use reusebench_core::DeviceSpec;
use reusebench_core::testing::{first_batch, plain_stage, tiny_classifier};
use reusebench_core::train::{OptimConfig, Step, TrainHooks, one_hot};
use reusebench_data::{Augment, synthetic};

fn scalar(t: Tensor<1>) -> f64 {
    t.into_scalar::<f32>() as f64
}

#[test]
fn der_plus_plus_terms_match_a_hand_computation_in_both_pass_modes() {
    let dev = DeviceSpec::for_tests().autodiff();
    let data = synthetic::generate(4, 2, 1, 0).unwrap();
    let task = Arc::new(data.train.select_classes(&|l| (l >= 2).then_some(l)));
    let old = data.train.select_classes(&|l| (l < 2).then_some(l));
    // Four stored examples with made-up stored logits: replaying 4 of 4
    // gives every entry, in an order that no term depends on.
    let stored: Vec<Vec<f32>> = (0..4)
        .map(|i| (0..4).map(|c| (i * 4 + c) as f32 * 0.25 - 1.0).collect())
        .collect();
    let mut filled = ReplayBuffer::new(4, [old.channels, old.height, old.width]);
    let mut rng = ChaCha8Rng::seed_from_u64(5);
    for i in 0..old.len() {
        filled.offer(&mut rng, old.image(i), old.labels[i], Some(&stored[i]));
    }
    let model = tiny_classifier(2, 4, 1, &dev);
    let optim = OptimConfig::sgd(0.1).with_momentum(0.0);
    let stage = plain_stage(&optim, 4, data.normalization, 4);
    let (alpha, beta) = (0.3, 0.7);
    let (x, labels) = first_batch(&task, 4, data.normalization, &dev);
    let replay = filled.batch(
        &[0, 1, 2, 3],
        Augment::NONE,
        &data.normalization,
        &mut rng,
        &dev,
    );
    let z = replay.logits.clone().unwrap();
    let y = one_hot(&replay.labels, 4, &dev);
    let terms = |a: Tensor<2>, b: Tensor<2>| {
        let d = a - z.clone();
        scalar((d.clone() * d).mean()) * alpha
            + scalar(cross_entropy_with_logits(b, y.clone())) * beta
    };
    // By hand: separate passes, then one pass over batch + both minibatches.
    let f_b = model.forward(replay.images.clone());
    let want_separate = terms(f_b.clone(), f_b);
    let all = model.forward(Tensor::cat(
        vec![x.clone(), replay.images.clone(), replay.images.clone()],
        0,
    ));
    let want_joint = terms(all.clone().narrow(0, 4, 4), all.narrow(0, 8, 4));
    assert!(
        (want_separate - want_joint).abs() > 1e-3,
        "the fixture must tell the modes apart: {want_separate} vs {want_joint}"
    );

    for (passes, want) in [
        (DerPasses::Separate, want_separate),
        (DerPasses::Joint, want_joint),
    ] {
        let mut buffer = filled.clone();
        let mut hook_rng = ChaCha8Rng::seed_from_u64(9);
        let loss = ReplayLoss::DerPlusPlus {
            alpha,
            beta,
            passes,
        };
        let mut hook = ReplayHook::new(&mut buffer, &task, &mut hook_rng, 4, loss);
        let appended =
            TrainHooks::<reusebench_core::model::Classifier>::extra_batch(&mut hook, &stage, &dev);
        assert_eq!(appended.is_some(), passes == DerPasses::Joint, "{passes:?}");
        // What the loop does: one pass over the batch and whatever it appends.
        let (logits, extra) = match appended {
            None => (model.forward(x.clone()), None),
            Some(rows) => {
                let m = rows.dims()[0];
                let out = model.forward(Tensor::cat(vec![x.clone(), rows], 0));
                (out.clone().narrow(0, 0, 4), Some(out.narrow(0, 4, m)))
            }
        };
        let step = Step {
            images: &x,
            labels: &labels,
            indices: &[0, 1, 2, 3],
            logits: &logits,
            extra_logits: extra.as_ref(),
            stage: &stage,
        };
        let got = scalar(hook.extra_loss(&model, &step).unwrap().unwrap());
        assert!(
            (got - want).abs() < 1e-5 * want.abs().max(1.0),
            "{passes:?}: hook {got} vs by hand {want}"
        );
    }
}
