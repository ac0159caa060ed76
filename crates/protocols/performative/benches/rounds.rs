//! A whole performative simulation per method on cached outputs: 200 rounds
//! (the paper's count) of 1000 training and 2000 test images over 10
//! classes, from a pool of 1000 images a class. The target: every method's
//! 200 rounds in seconds on the CPU (`retrain` fine-tunes the head every
//! round and is the slowest by design).
//!
//!   cargo bench -p reusebench-performative --bench rounds

use std::time::Duration;

use criterion::{Criterion, criterion_group, criterion_main};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use reusebench_core::bounded::PositiveInt;
use reusebench_core::features::Rows;
use reusebench_core::model::linear_head;
use reusebench_core::train::OptimConfig;
use reusebench_core::{DeviceSpec, NoProgress};
use reusebench_performative::methods::{Deployed, PerformativeMethod};
use reusebench_performative::simulator::Replace;
use reusebench_performative::{Parts, Settings, simulate};

const CLASSES: usize = 10;
const PER_CLASS: usize = 1000;
const DIM: usize = 32;

/// Outputs of a made-up deployed model: features around a class centre,
/// logits favouring the true class with noise (about 70% accurate).
fn deployed() -> (Deployed, Parts) {
    // The training device: `retrain` fine-tunes this head, as the protocol
    // does with the head it loads there.
    let device = DeviceSpec::for_tests().autodiff();
    let mut rng = ChaCha8Rng::seed_from_u64(0);
    let (mut probs, mut feats, mut labels) = (Vec::new(), Vec::new(), Vec::new());
    for c in 0..CLASSES {
        for _ in 0..PER_CLASS {
            let logits: Vec<f64> = (0..CLASSES)
                .map(|j| if j == c { 1.5 } else { 0.0 } + rng.random::<f64>() * 2.0)
                .collect();
            let max = logits.iter().copied().fold(f64::NEG_INFINITY, f64::max);
            let e: Vec<f64> = logits.iter().map(|l| (l - max).exp()).collect();
            let s: f64 = e.iter().sum();
            probs.extend(e.iter().map(|v| v / s));
            feats.extend((0..DIM).map(|d| (d % CLASSES == c) as u8 as f32 + rng.random::<f32>()));
            labels.push(c as u32);
        }
    }
    let half = PER_CLASS / 2;
    let parts = Parts {
        train: (0..CLASSES)
            .map(|c| (c * PER_CLASS..c * PER_CLASS + half).collect())
            .collect(),
        test: (0..CLASSES)
            .map(|c| (c * PER_CLASS + half..(c + 1) * PER_CLASS).collect())
            .collect(),
    };
    let deployed = Deployed {
        classes: CLASSES,
        probs,
        features: Rows {
            values: feats,
            dim: DIM,
        },
        head: linear_head(&mut rng, DIM, CLASSES, &device),
        labels,
        source_prior: vec![1.0 / CLASSES as f64; CLASSES],
        pool_train: parts.train.concat(),
        source: None,
    };
    (deployed, parts)
}

fn methods() -> Vec<PerformativeMethod> {
    use reusebench_performative::methods::*;
    vec![
        PerformativeMethod::NoAdapt(NoAdapt {}),
        PerformativeMethod::OraclePrior(OraclePrior::default()),
        PerformativeMethod::EmPrior(EmPrior::default()),
        PerformativeMethod::Bbse(Bbse {}),
        PerformativeMethod::Pap(Pap::default()),
        PerformativeMethod::RetrainHead(RetrainHead {
            epochs: PositiveInt::of(1),
            batch_size: PositiveInt::of(32),
            backbone: false,
            optimizer: OptimConfig::sgd(0.01),
        }),
    ]
}

fn rounds(c: &mut Criterion) {
    // criterion's test mode (`cargo test --all-targets`) runs each once:
    // a few rounds prove it works.
    let test_mode = !std::env::args().any(|a| a == "--bench");
    let rounds = if test_mode { 3 } else { 200 };
    let (deployed, parts) = deployed();
    let device = DeviceSpec::for_tests().autodiff();
    let mut group = c.benchmark_group("performative_200_rounds");
    group
        .sample_size(10)
        .measurement_time(Duration::from_secs(20));
    for method in methods() {
        let settings = Settings {
            method: method.name().into(),
            rounds,
            dirichlet_alpha: 100.0,
            temperature: 0.1,
            sign: -1.0,
            n_train: 1000,
            n_test: 2000,
            min_per_class: 5,
            replace: Replace::Auto,
        };
        group.bench_function(method.name(), |b| {
            b.iter(|| {
                let adapter = method.spec().build(&deployed, 0, &device).unwrap();
                simulate(
                    &settings,
                    &deployed,
                    &parts,
                    (adapter, None),
                    ChaCha8Rng::seed_from_u64(1),
                    (&NoProgress, &|_| {}),
                )
                .unwrap()
            })
        });
    }
    group.finish();
}

criterion_group!(benches, rounds);
criterion_main!(benches);
