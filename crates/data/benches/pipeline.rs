//! The data pipeline's rates, to set against the train step's consumption:
//! CIFAR binary decode, augment + normalise + batch (the prefetching
//! iterator), and Tiny ImageNet JPEG decode.
//!
//!   cargo bench -p reusebench-data --bench pipeline
//!
//! Throughput in images per second (criterion's "elem/s").

use std::hint::black_box;
use std::sync::Arc;
use std::time::Duration;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use reusebench_data::cifar::{load_cifar10, write_cifar10_fixture};
use reusebench_data::tiny_imagenet::{load_tiny_imagenet, write_tiny_imagenet_fixture};
use reusebench_data::{Augment, BatchIter, BatchPlan};

fn pipeline(c: &mut Criterion) {
    let tmp = tempfile::tempdir().unwrap();
    let mut group = c.benchmark_group("data");
    group
        .sample_size(10)
        .measurement_time(Duration::from_secs(10));

    // CIFAR-10: 5 training files + test file of 1000 records each (6000 images).
    let cifar = tmp.path().join("cifar-10-batches-bin");
    write_cifar10_fixture(&cifar, 100, 0).unwrap();
    let data = load_cifar10(&cifar).unwrap();
    let n = data.train.len() + data.test.len();
    group.throughput(Throughput::Elements(n as u64));
    group.bench_function("cifar10_decode", |b| {
        b.iter(|| black_box(load_cifar10(&cifar).unwrap()))
    });

    let train = Arc::new(data.train);
    group.throughput(Throughput::Elements(train.len() as u64));
    for batch in [32usize, 128] {
        group.bench_function(format!("augment_batch_{batch}"), |b| {
            b.iter(|| {
                let plan = BatchPlan {
                    batch_size: batch,
                    shuffle_seed: Some(1),
                    augment: Augment::STANDARD,
                    normalization: data.normalization,
                    prefetch: 4,
                    drop_last: true,
                };
                let mut sum = 0f32;
                for batch in BatchIter::new(Arc::clone(&train), plan) {
                    sum += batch.images[0];
                }
                black_box(sum)
            })
        });
    }

    // Tiny ImageNet: 20 classes x 10 training + 5 val JPEGs (300 images);
    // the cache path is a file, so the cache cannot be written and every
    // load decodes.
    let tiny = tmp.path().join("tiny-imagenet-200");
    write_tiny_imagenet_fixture(&tiny, 20, 10, 5).unwrap();
    let no_cache = tmp.path().join("not-a-folder");
    std::fs::write(&no_cache, b"").unwrap();
    group.throughput(Throughput::Elements(300));
    group.bench_function("tiny_imagenet_jpeg_decode_64px", |b| {
        b.iter(|| black_box(load_tiny_imagenet(&tiny, 64, Some(&no_cache)).unwrap()))
    });
    group.finish();
}

criterion_group!(benches, pipeline);
criterion_main!(benches);
