//! One convolution's forward + backward (input and weight gradients) on the
//! flex backend: burn's own convolution against `GemmConv2d`, at the
//! shapes of ResNet-18 (CIFAR variant) layers.
//!
//!   cargo bench -p reusebench-kernels --bench conv

use std::time::Duration;

use burn::backend::Dispatch;
use burn::tensor::module::conv2d;
use burn::tensor::ops::ConvOptions;
use burn::tensor::{Device, Distribution, Tensor};
use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use reusebench_kernels::conv2d::GemmConv2d;

/// (name, input [N, C, H, W], output channels, stride, kernel)
fn layers() -> Vec<(&'static str, [usize; 4], usize, usize, usize)> {
    let test_mode = !std::env::args().any(|a| a == "--bench");
    let mut v = vec![("w20_layer1_3x3", [32, 20, 32, 32], 20, 1, 3)];
    if !test_mode {
        v.extend([
            ("w20_layer2_3x3_s2", [32, 20, 32, 32], 40, 2, 3),
            ("w20_layer4_3x3", [32, 160, 4, 4], 160, 1, 3),
            ("w64_layer1_3x3", [32, 64, 32, 32], 64, 1, 3),
            ("w64_layer3_3x3", [32, 256, 8, 8], 256, 1, 3),
            ("w64_shortcut_1x1_s2", [32, 64, 32, 32], 128, 2, 1),
        ]);
    }
    v
}

fn step(gemm: bool, x: &Tensor<4>, w: &Tensor<4>, stride: usize, pad: usize) -> Tensor<4> {
    let x = x.clone().require_grad();
    let w = w.clone().require_grad();
    let y = if gemm {
        Tensor::from_dispatch(<Dispatch as GemmConv2d>::gemm_conv2d(
            x.clone().into_dispatch(),
            w.clone().into_dispatch(),
            [stride; 2],
            [pad; 2],
        ))
    } else {
        conv2d(
            x.clone(),
            w.clone(),
            None,
            ConvOptions::new([stride; 2], [pad; 2], [1, 1], 1),
        )
    };
    let grads = y.sum().backward();
    let dx = x.grad(&grads).unwrap();
    let dw = w.grad(&grads).unwrap();
    // Force both gradients to be materialised in a contiguous layout, as the
    // next layer and the optimizer would read them.
    let _ = dw.into_data();
    dx
}

fn conv_pass(c: &mut Criterion) {
    let mut group = c.benchmark_group("conv2d_fwd_bwd");
    group
        .sample_size(10)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(4));
    let dev = Device::flex().autodiff();
    let normal = Distribution::Normal(0.0, 1.0);
    for (name, shape, out, stride, k) in layers() {
        let x = Tensor::<4>::random(shape, normal, &dev);
        let w = Tensor::<4>::random([out, shape[1], k, k], normal, &dev);
        group.throughput(Throughput::Elements(shape[0] as u64));
        for (label, gemm) in [("burn", false), ("gemm", true)] {
            group.bench_function(BenchmarkId::new(label, name), |b| {
                b.iter(|| step(gemm, &x, &w, stride, k / 2).into_data())
            });
        }
    }
    group.finish();
}

criterion_group!(benches, conv_pass);
criterion_main!(benches);
