//! The C8 canonicalizer's forward pass against the same convolutions with
//! fixed filters: what building the rotated, stacked filter bank costs on
//! top of the convolutions themselves. The target: a C8 forward at most a
//! few times one small convolution stack. Batch 64 of 32x32 RGB images,
//! equiadapt's defaults (3 layers, 32 channels, kernel 5, crop 0.8).
//!
//!   cargo bench -p reusebench-canonicalize --bench canonicalizer

use std::time::Duration;

use burn::tensor::activation::relu;
use burn::tensor::{Tensor, TensorData};
use criterion::{Criterion, criterion_group, criterion_main};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use reusebench_canonicalize::canonicalizer::{Canonicalizer, CanonicalizerConfig};
use reusebench_core::DeviceSpec;
use reusebench_kernels::conv2d_with_weight;

const BATCH: usize = 64;
const SIZE: usize = 32;

fn random(shape: [usize; 4], rng: &mut ChaCha8Rng, device: &burn::tensor::Device) -> Tensor<4> {
    let n = shape.iter().product();
    let v: Vec<f32> = (0..n).map(|_| rng.random::<f32>() - 0.5).collect();
    Tensor::from_data(TensorData::new(v, shape), device)
}

fn bench(c: &mut Criterion) {
    let device = DeviceSpec::for_tests();
    let mut rng = ChaCha8Rng::seed_from_u64(0);
    let x = random([BATCH, 3, SIZE, SIZE], &mut rng, &device);
    let config = CanonicalizerConfig::default();
    let mut group = c.benchmark_group("canonicalizer");
    group
        .sample_size(20)
        .measurement_time(Duration::from_secs(10));
    for order in [4usize, 8] {
        let canon = Canonicalizer::new(&config, order, 3, SIZE, &mut rng, &device);
        group.bench_function(format!("c{order} scores"), |b| {
            b.iter(|| canon.scores(x.clone()).into_data())
        });
        group.bench_function(format!("c{order} scores + canonicalize"), |b| {
            b.iter(|| {
                let s = canon.scores(x.clone());
                canon.canonicalize(x.clone(), s).into_data()
            })
        });
        // The same convolutions with their filters given: what the scores
        // would cost if the bank came for free (crop to 26x26 included).
        let width = config.channels.get() * order;
        let w1 = random([width, 3, config.kernel, config.kernel], &mut rng, &device);
        let w2 = random([width, width, 1, 1], &mut rng, &device);
        let crop = x.clone().narrow(2, 3, 26).narrow(3, 3, 26);
        group.bench_function(format!("c{order}-sized plain conv stack"), |b| {
            b.iter(|| {
                let mut f = conv2d_with_weight(crop.clone(), w1.clone(), [1, 1], [0, 0]);
                for _ in 1..config.layers.get() {
                    f = conv2d_with_weight(relu(f), w2.clone(), [1, 1], [0, 0]);
                }
                f.mean().into_data()
            })
        });
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
