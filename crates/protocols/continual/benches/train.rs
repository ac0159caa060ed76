//! Train-step and inference throughput per method family, vit-tiny's train
//! step, feature extraction, the LP stage with and without the feature
//! cache, and kNN.
//!
//!   cargo bench -p reusebench-continual --bench train            # widths 20, 64 x batches 32, 128
//!   cargo bench -p reusebench-continual --bench train -- vit     # vit-tiny only
//!   REUSEBENCH_BENCH_QUICK=1 cargo bench -p reusebench-continual --bench train  # width 20, batch 32 only
//!
//! Throughput is reported in images per second (criterion's "elem/s").

use std::hint::black_box;
use std::sync::Arc;
use std::time::{Duration, Instant};

use burn::tensor::Device;
use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use reusebench_continual::methods::{ReplayBuffer, ReplayHook, ReplayLoss, logits_with_base};
use reusebench_core::feature_cache::FeatureCache;
use reusebench_core::features::{cached_features, features};
use reusebench_core::metrics::{KnnConfig, knn_accuracy};
use reusebench_core::model::{Classifier, SideNet, linear_head};
use reusebench_core::penalties::{QuadraticPenalty, snapshot};
use reusebench_core::testing::plain_stage;
use reusebench_core::throughput::{train_steps_with, workload};
use reusebench_core::train::{NoHooks, OptimConfig, Stage, TrainHooks, fit, fit_linear, fit_with};
use reusebench_data::{ImageSet, Normalization, synthetic};

fn shapes() -> Vec<(usize, usize)> {
    // `cargo test --all-targets` runs each benchmark once without `--bench`
    // (criterion's test mode): the smallest shape is enough to prove it runs.
    let test_mode = !std::env::args().any(|a| a == "--bench");
    if test_mode || std::env::var_os("REUSEBENCH_BENCH_QUICK").is_some() {
        vec![(20, 32)]
    } else {
        vec![(20, 32), (20, 128), (64, 32), (64, 128)]
    }
}

fn device() -> Device {
    Device::flex().autodiff()
}

const NORM: Normalization = Normalization {
    mean: [0.5; 3],
    std: [0.25; 3],
};

fn train_step(c: &mut Criterion) {
    let mut group = c.benchmark_group("train_step");
    group
        .sample_size(10)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(10));
    let dev = device();
    for (width, batch) in shapes() {
        group.throughput(Throughput::Elements(batch as u64));
        for family in ["plain", "mas_penalty", "replay", "side_tuning"] {
            let (mut model, x, y) = workload(width, batch, &dev);
            let anchor = snapshot(&model);
            let weights = anchor.iter().map(|(k, v)| (*k, v.ones_like())).collect();
            let mut rng = ChaCha8Rng::seed_from_u64(1);
            let mut buffer = ReplayBuffer::new(200, [3, 32, 32]);
            let empty = ImageSet::empty(3, 32, 32);
            for i in 0..200u32 {
                buffer.offer(&mut rng, &[(i % 255) as u8; 3 * 32 * 32], i % 10, None);
            }
            if family == "side_tuning" {
                let mut r = ChaCha8Rng::seed_from_u64(2);
                let side = SideNet::random(8, 8 * width, &mut r, &dev);
                model = model.with_side(side, 0.5);
            }
            let mut model = Some(model);
            group.bench_function(
                BenchmarkId::new(family, format!("w{width}_b{batch}")),
                |b| {
                    b.iter_custom(|iters| {
                        let mut penalty = QuadraticPenalty {
                            anchor: &anchor,
                            weights: Some(&weights),
                            scale: 1.0,
                        };
                        let mut replay =
                            ReplayHook::new(&mut buffer, &empty, &mut rng, batch, ReplayLoss::Er);
                        let hooks: &mut dyn TrainHooks<Classifier> = match family {
                            "mas_penalty" => &mut penalty,
                            "replay" => &mut replay,
                            _ => &mut NoHooks,
                        };
                        let (m, seconds) =
                            train_steps_with(model.take().unwrap(), &x, &y, iters as usize, hooks);
                        model = Some(m);
                        Duration::from_secs_f64(seconds)
                    })
                },
            );
        }
    }
    group.finish();
}

/// vit-tiny's train step (patch 4 at 32 px, dim 192, depth 6, 3 heads),
/// the workload `scripts/compare_pytorch.py --arch vit-tiny` sets against
/// PyTorch eager.
fn vit_train_step(c: &mut Criterion) {
    use reusebench_core::backbone::{Arch, BackboneConfig};
    use reusebench_core::throughput::{train_steps, workload_of};
    let mut group = c.benchmark_group("train_step_vit");
    group
        .sample_size(10)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(10));
    let batch = 32;
    group.throughput(Throughput::Elements(batch as u64));
    let cfg = BackboneConfig {
        arch: Arch::VitTiny,
        ..Default::default()
    };
    let (model, x, y) = workload_of(&cfg, batch, &device());
    let mut model = Some(model);
    group.bench_function(BenchmarkId::new("vit-tiny", format!("b{batch}")), |b| {
        b.iter_custom(|iters| {
            let (m, seconds) = train_steps(model.take().unwrap(), &x, &y, iters as usize);
            model = Some(m);
            Duration::from_secs_f64(seconds)
        })
    });
    group.finish();
}

fn images(n: usize) -> Arc<ImageSet> {
    let data = synthetic::generate(10, n.div_ceil(10), 1, 0).unwrap();
    Arc::new(data.train)
}

fn inference_and_lp(c: &mut Criterion) {
    let dev = device();
    let mut group = c.benchmark_group("features");
    group
        .sample_size(10)
        .measurement_time(Duration::from_secs(10));
    let set = images(512);
    let mut widths: Vec<usize> = shapes().iter().map(|s| s.0).collect();
    widths.dedup();
    for width in widths {
        let (model, _, _) = workload(width, 32, &dev);
        group.throughput(Throughput::Elements(set.len() as u64));
        group.bench_function(BenchmarkId::new("backbone", format!("w{width}")), |b| {
            b.iter(|| black_box(features(model.backbone(), &set, 256, NORM, &dev)))
        });
    }
    group.finish();

    // LP-FT's linear-probe stage: features computed once then `epochs` epochs
    // of the linear head, against recomputing the frozen backbone's features
    // every epoch (what a training loop over images does).
    let mut group = c.benchmark_group("lp_stage");
    group
        .sample_size(10)
        .measurement_time(Duration::from_secs(20));
    let set = images(256);
    let optim = OptimConfig::sgd(0.05);
    let (model, _, _) = workload(20, 32, &dev);
    let stage = |epochs| Stage {
        name: "lp".into(),
        epochs,
        ..plain_stage(&optim, 32, NORM, 10)
    };
    let fresh_head = || linear_head(&mut ChaCha8Rng::seed_from_u64(3), 160, 10, &dev);
    // Caching saves all but one of the E feature passes, so the speed-up is
    // bounded by E: measured at 10 epochs and at the CPU grids' 20.
    for epochs in [10usize, 20] {
        group.throughput(Throughput::Elements((set.len() * epochs) as u64));
        group.bench_function(
            BenchmarkId::new("cached_features", format!("w20_{epochs}epochs")),
            |b| {
                b.iter(|| {
                    let f = features(model.backbone(), &set, 256, NORM, &dev);
                    black_box(
                        fit_linear(
                            fresh_head(),
                            &f.values,
                            &set.labels,
                            f.dim,
                            &stage(epochs),
                            &dev,
                            &reusebench_core::NoProgress,
                        )
                        .unwrap(),
                    )
                })
            },
        );
        group.bench_function(
            BenchmarkId::new("recomputed_features", format!("w20_{epochs}epochs")),
            |b| {
                b.iter(|| {
                    let mut head = fresh_head();
                    for _ in 0..epochs {
                        let f = features(model.backbone(), &set, 32, NORM, &dev);
                        head = fit_linear(
                            head,
                            &f.values,
                            &set.labels,
                            f.dim,
                            &stage(1),
                            &dev,
                            &reusebench_core::NoProgress,
                        )
                        .unwrap()
                        .0;
                    }
                    black_box(head)
                })
            },
        );
    }
    group.finish();
}

/// Side-tuning on un-augmented data: the frozen base's features from the
/// cache (computed once) against running the base every step.
fn side_tuning_epochs(c: &mut Criterion) {
    let dev = device();
    let mut group = c.benchmark_group("side_tuning");
    group
        .sample_size(10)
        .measurement_time(Duration::from_secs(20));
    let set = images(256);
    let epochs = 3;
    let optim = OptimConfig::sgd(0.01);
    let stage = Stage {
        name: "side".into(),
        epochs,
        ..plain_stage(&optim, 32, NORM, 10)
    };
    let build = || {
        let (model, _, _) = workload(20, 32, &dev);
        let mut r = ChaCha8Rng::seed_from_u64(2);
        model.with_side(SideNet::random(8, 160, &mut r, &dev), 0.5)
    };
    group.throughput(Throughput::Elements((set.len() * epochs) as u64));
    group.bench_function(
        BenchmarkId::new("base_every_step", format!("w20_side8_{epochs}epochs")),
        |b| {
            b.iter(|| {
                black_box(
                    fit(
                        build(),
                        &set,
                        &stage,
                        &mut NoHooks,
                        &dev,
                        &reusebench_core::NoProgress,
                    )
                    .unwrap(),
                )
            })
        },
    );
    group.bench_function(
        BenchmarkId::new("cached_base", format!("w20_side8_{epochs}epochs")),
        |b| {
            b.iter(|| {
                let model = build();
                let cache = FeatureCache::default();
                let base = cached_features(
                    &cache,
                    &Classifier::new(model.backbone().clone(), model.head.clone()),
                    &set,
                    256,
                    NORM,
                    &dev,
                );
                let forward = |m: &Classifier, x, idx: &[usize]| logits_with_base(m, x, &base, idx);
                black_box(
                    fit_with(
                        model,
                        &set,
                        &stage,
                        &mut NoHooks,
                        &forward,
                        &dev,
                        &reusebench_core::NoProgress,
                    )
                    .unwrap(),
                )
            })
        },
    );
    group.finish();
}

fn knn(c: &mut Criterion) {
    let mut group = c.benchmark_group("knn");
    group.sample_size(10);
    let (bank_n, query_n, dim) = (5000, 1000, 160);
    let mut rng = ChaCha8Rng::seed_from_u64(4);
    let mut rows = |n: usize| reusebench_core::features::Rows {
        values: (0..n * dim)
            .map(|_| rand::Rng::random::<f32>(&mut rng))
            .collect(),
        dim,
    };
    let bank = rows(bank_n);
    let queries = rows(query_n);
    let bank_labels: Vec<u32> = (0..bank_n as u32).map(|i| i % 10).collect();
    let query_labels: Vec<u32> = (0..query_n as u32).map(|i| i % 10).collect();
    group.throughput(Throughput::Elements(query_n as u64));
    group.bench_function("bank5000_queries1000_dim160_k200", |b| {
        b.iter(|| {
            black_box(knn_accuracy(
                &bank,
                &bank_labels,
                &queries,
                &query_labels,
                &KnnConfig::default(),
            ))
        })
    });
    group.finish();
    let _ = Instant::now();
}

criterion_group!(
    benches,
    train_step,
    vit_train_step,
    inference_and_lp,
    side_tuning_epochs,
    knn
);
criterion_main!(benches);
