//! The debias methods' definitions on a tiny classifier: change-penalty's
//! proximal step is finite for any λ and keeps θ′ at zero for a huge one;
//! side-tuning starts from the base's own outputs; finetune-plain ignores
//! early stopping; with no minimum, a solved batch is not tuned.

use std::sync::Arc;

use burn::module::Module;
use rand::SeedableRng;
use reusebench_core::DeviceSpec;
use reusebench_core::model::{Classifier, SideNet};
use reusebench_core::penalties::changes;
use reusebench_core::progress::NoProgress;
use reusebench_core::testing::tiny_classifier;
use reusebench_data::{ImageSet, Normalization, synthetic};
use reusebench_debias::methods::{DebiasMethod, TuneContext, Tuned, tuning_batch};

/// The method a grid line names.
fn method(json: &str) -> DebiasMethod {
    serde_json::from_str(json).unwrap()
}

/// Tunes a tiny classifier with `json`'s method on 4 images of a synthetic set.
fn tune(json: &str, max_steps: usize, min_steps: usize) -> (Classifier, Tuned, Arc<ImageSet>) {
    let dev = DeviceSpec::for_tests().autodiff();
    let data = synthetic::generate(4, 1, 1, 3).unwrap();
    let tuning = Arc::new(data.train);
    let start = tiny_classifier(8, 4, 0, &dev);
    let ctx = TuneContext {
        tuning: &tuning,
        pretraining: &tuning,
        classes: 4,
        normalization: Normalization::IMAGENET,
        max_steps,
        early_stopping: true,
        min_steps,
        seed: 0,
        device: &dev,
        progress: &NoProgress,
    };
    let tuned = method(json).spec().tune(&start, &ctx).unwrap();
    (start, tuned, tuning)
}

fn theta_prime(model: &Classifier) -> Vec<f32> {
    changes(model)
        .into_iter()
        .flat_map(|t| t.into_data().convert::<f32>().try_to_vec::<f32>().unwrap())
        .collect()
}

#[test]
fn change_penalty_prox_is_finite_for_any_lambda() {
    for norm in ["l1", "l2", "both"] {
        for lambda in [1e-6, 1.0, 1e6] {
            let json = format!(
                r#"{{"name": "change-penalty", "optimizer": {{"lr": 0.1}}, "lambda": {lambda}, "norm": "{norm}"}}"#
            );
            let (_, tuned, _) = tune(&json, 3, 3);
            let delta = theta_prime(&tuned.model);
            assert!(!delta.is_empty());
            assert!(delta.iter().all(|d| d.is_finite()), "{norm} λ={lambda}");
            let moved = delta.iter().filter(|d| **d != 0.0).count();
            if lambda >= 1e6 && norm != "l2" {
                // The threshold lr·λ is above every gradient step: no change.
                assert_eq!(moved, 0, "{norm} λ={lambda}: θ′ must stay at zero");
            }
            if lambda <= 1e-6 {
                assert!(moved > delta.len() / 2, "{norm} λ={lambda}: θ′ must move");
            }
        }
    }
    // L2's shrink factor 1/(1 + 2·lr·λ) leaves almost nothing at λ = 1e6.
    let (_, tuned, _) = tune(
        r#"{"name": "change-penalty", "optimizer": {"lr": 0.1}, "lambda": 1e6, "norm": "l2"}"#,
        3,
        3,
    );
    let largest = theta_prime(&tuned.model)
        .iter()
        .fold(0f32, |m, d| m.max(d.abs()));
    assert!(largest < 1e-5, "{largest}");
}

#[test]
fn change_penalty_l1_prox_gives_exact_zeros() {
    // A moderate λ: some coordinates of θ′ are moved, many stay exactly 0
    // (the sparse change the L1 penalty is for); a gradient step on |θ′|
    // would leave none at exactly zero.
    let json = r#"{"name": "change-penalty", "optimizer": {"lr": 0.1, "momentum": 0.0}, "lambda": 0.05, "norm": "l1"}"#;
    let (_, tuned, _) = tune(json, 4, 4);
    let delta = theta_prime(&tuned.model);
    let zeros = delta.iter().filter(|d| **d == 0.0).count();
    assert!(
        zeros > 0 && zeros < delta.len(),
        "{zeros} of {}",
        delta.len()
    );
}

#[test]
fn side_tuning_copy_starts_from_the_base_outputs() {
    // Zhang et al.'s initialisation: the side network is the base, behind
    // an identity projection, so the blend is the base for any α.
    let dev = DeviceSpec::for_tests().autodiff();
    let data = synthetic::generate(4, 2, 1, 3).unwrap();
    let x = tuning_batch(&data.train, Normalization::IMAGENET, &dev);
    let start = tiny_classifier(4, 4, 0, &dev);
    let dim = start.head.weight.dims()[0];
    let logits = |m: &Classifier| {
        m.valid()
            .forward(x.clone())
            .into_data()
            .try_to_vec::<f32>()
            .unwrap()
    };
    let base = logits(&start);
    let copy = start
        .clone()
        .with_side(SideNet::copy_of(start.backbone(), dim, &dev), 0.3);
    let diff = base
        .iter()
        .zip(&logits(&copy))
        .fold(0f32, |m, (p, q)| m.max((p - q).abs()));
    assert!(
        diff < 1e-5,
        "side-tuning's start differs from the base by {diff}"
    );
    // A random side network does not start there.
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(1);
    let random = start
        .clone()
        .with_side(SideNet::random(4, dim, &mut rng, &dev), 0.3);
    let diff = base
        .iter()
        .zip(&logits(&random))
        .fold(0f32, |m, (p, q)| m.max((p - q).abs()));
    assert!(diff > 1e-3, "{diff}");
    // The copy trains (batch norm included), the base does not.
    let side = &copy.side_tuned().unwrap().side;
    assert!(side.net.clone().num_params() > 0);
    let json = r#"{"name": "side-tuning", "optimizer": {"lr": 0.1}}"#;
    let (_, tuned, _) = tune(json, 2, 2);
    assert_eq!(tuned.steps, 2);
}

#[test]
fn finetune_plain_runs_every_step_and_a_solved_batch_is_not_tuned() {
    let plain = r#"{"name": "finetune-plain", "optimizer": {"lr": 0.02, "momentum": 0.0}}"#;
    let (_, tuned, _) = tune(plain, 60, 0);
    assert_eq!((tuned.steps, tuned.stopped_early), (60, false));
    // finetune with the same lr solves the 4 images before that and stops.
    let early = r#"{"name": "finetune", "optimizer": {"lr": 0.02, "momentum": 0.0}}"#;
    let (_, tuned, _) = tune(early, 60, 0);
    assert!(
        tuned.stopped_early && tuned.steps < 60,
        "{} steps",
        tuned.steps
    );
    // Tuning the tuned model again: solved before the first step.
    let dev = DeviceSpec::for_tests().autodiff();
    let data = synthetic::generate(4, 1, 1, 3).unwrap();
    let tuning = Arc::new(data.train);
    let ctx = TuneContext {
        tuning: &tuning,
        pretraining: &tuning,
        classes: 4,
        normalization: Normalization::IMAGENET,
        max_steps: 60,
        early_stopping: true,
        min_steps: 0,
        seed: 0,
        device: &dev,
        progress: &NoProgress,
    };
    let again = method(early).spec().tune(&tuned.model, &ctx).unwrap();
    assert_eq!((again.steps, again.stopped_early), (0, true));
}

/// The paper's mechanism, on a fixture: the larger λ, the more of the
/// start's predictions on held-out images the tuned model keeps; λ = 0 is
/// fine-tuning, a huge λ changes nothing.
#[test]
fn a_larger_penalty_keeps_more_of_the_start() {
    let dev = DeviceSpec::for_tests().autodiff();
    let held_out = synthetic::generate(4, 8, 1, 9).unwrap().train;
    let x = tuning_batch(&held_out, Normalization::IMAGENET, &dev);
    let predictions = |m: &Classifier| -> Vec<i64> {
        m.valid()
            .forward(x.clone())
            .argmax(1)
            .into_data()
            .convert::<i64>()
            .try_to_vec::<i64>()
            .unwrap()
    };
    let kept = |lambda: f64| -> usize {
        let json = format!(
            r#"{{"name": "change-penalty", "optimizer": {{"lr": 0.1, "momentum": 0.0}}, "lambda": {lambda}, "norm": "l1"}}"#
        );
        let (start, tuned, _) = tune(&json, 40, 40);
        let (a, b) = (predictions(&start), predictions(&tuned.model));
        a.iter().zip(&b).filter(|(p, q)| p == q).count()
    };
    let (free, mild, strong) = (kept(0.0), kept(0.02), kept(1e3));
    assert_eq!(strong, held_out.len(), "a huge λ keeps every prediction");
    assert!(
        free < strong,
        "fine-tuning changes predictions: {free} of {}",
        held_out.len()
    );
    assert!(free <= mild && mild <= strong, "{free} ≤ {mild} ≤ {strong}");
}

/// Side-tuning trains its side network and head only: the base it was
/// copied from keeps its pretrained weights (its features do not move),
/// even though the side started as that very base.
#[test]
fn side_tuning_leaves_the_base_as_pretrained() {
    let json = r#"{"name": "side-tuning", "optimizer": {"lr": 0.1, "momentum": 0.0}}"#;
    let (start, tuned, tuning) = tune(json, 3, 3);
    let dev = DeviceSpec::for_tests().autodiff();
    let x = tuning_batch(&tuning, Normalization::IMAGENET, &dev);
    let features = |r: &reusebench_core::backbone::Backbone| -> Vec<f32> {
        r.valid()
            .forward(x.clone())
            .into_data()
            .try_to_vec::<f32>()
            .unwrap()
    };
    let side = &tuned.model.side_tuned().unwrap().side;
    assert_eq!(
        features(start.backbone()),
        features(tuned.model.backbone()),
        "the frozen base moved"
    );
    assert_ne!(
        features(start.backbone()),
        features(&side.net),
        "the side network trained"
    );
    // Its batch-norm statistics too: the copy's train on storage of their own.
    let stats = |r: &reusebench_core::backbone::Backbone| -> Vec<f32> {
        let mut r = r.clone();
        r.batch_norms_mut()
            .iter()
            .flat_map(|bn| {
                bn.running_mean
                    .value_sync()
                    .into_data()
                    .try_to_vec::<f32>()
                    .unwrap()
            })
            .collect()
    };
    assert_eq!(
        stats(start.backbone()),
        stats(tuned.model.backbone()),
        "the base's statistics moved"
    );
    assert_ne!(
        stats(start.backbone()),
        stats(&side.net),
        "the copy's statistics train"
    );
}
