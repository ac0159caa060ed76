//! The flex convolution kernel (`kernels::conv2d`) against burn's own
//! convolution: outputs, input gradients and weight gradients, for the
//! geometries ResNets use and a few awkward ones.
#![cfg(feature = "flex")]

use burn::backend::Dispatch;
use burn::tensor::module::conv2d;
use burn::tensor::ops::ConvOptions;
use burn::tensor::{Device, Distribution, Tensor};
use reusebench_kernels::conv2d::GemmConv2d;

fn gemm_conv(x: Tensor<4>, w: Tensor<4>, stride: [usize; 2], padding: [usize; 2]) -> Tensor<4> {
    Tensor::from_dispatch(<Dispatch as GemmConv2d>::gemm_conv2d(
        x.into_dispatch(),
        w.into_dispatch(),
        stride,
        padding,
    ))
}

fn max_abs_diff(a: Tensor<4>, b: Tensor<4>) -> f32 {
    assert_eq!(a.dims(), b.dims());
    (a - b).abs().max().into_scalar::<f32>()
}

fn scale(t: &Tensor<4>) -> f32 {
    t.clone().abs().max().into_scalar::<f32>().max(1.0)
}

/// Returns (output, dx, dw) for one implementation under loss = Σ y·r.
fn run(
    gemm: bool,
    x: &Tensor<4>,
    w: &Tensor<4>,
    r: &Tensor<4>,
    stride: [usize; 2],
    padding: [usize; 2],
) -> (Tensor<4>, Tensor<4>, Tensor<4>) {
    let x = x.clone().require_grad();
    let w = w.clone().require_grad();
    let y = if gemm {
        gemm_conv(x.clone(), w.clone(), stride, padding)
    } else {
        conv2d(
            x.clone(),
            w.clone(),
            None,
            ConvOptions::new(stride, padding, [1, 1], 1),
        )
    };
    let grads = (y.clone() * r.clone()).sum().backward();
    let dx = x.grad(&grads).expect("input gradient");
    let dw = w.grad(&grads).expect("weight gradient");
    (y.inner(), dx, dw)
}

fn check(x: [usize; 4], w: [usize; 4], stride: [usize; 2], padding: [usize; 2]) {
    let dev = Device::flex().autodiff();
    let normal = Distribution::Normal(0.0, 1.0);
    let xt = Tensor::<4>::random(x, normal, &dev);
    let wt = Tensor::<4>::random(w, normal, &dev);
    let reference = conv2d(
        xt.clone(),
        wt.clone(),
        None,
        ConvOptions::new(stride, padding, [1, 1], 1),
    );
    let r = Tensor::<4>::random(reference.dims(), normal, &dev);
    let (y0, dx0, dw0) = run(false, &xt, &wt, &r, stride, padding);
    let (y1, dx1, dw1) = run(true, &xt, &wt, &r, stride, padding);
    let case = format!("x {x:?} w {w:?} stride {stride:?} padding {padding:?}");
    for (name, a, b) in [("output", y0, y1), ("dx", dx0, dx1), ("dw", dw0, dw1)] {
        let tol = 1e-4 * scale(&a);
        let diff = max_abs_diff(a, b);
        assert!(
            diff <= tol,
            "{case}: {name} differs by {diff} (tolerance {tol})"
        );
    }
}

#[test]
fn matches_burn_on_resnet_geometries() {
    check([3, 4, 8, 8], [5, 4, 3, 3], [1, 1], [1, 1]); // 3x3 block conv
    check([3, 4, 8, 8], [6, 4, 3, 3], [2, 2], [1, 1]); // 3x3 stride-2 conv
    check([3, 4, 8, 8], [6, 4, 1, 1], [2, 2], [0, 0]); // 1x1 stride-2 shortcut
    check([2, 3, 15, 15], [4, 3, 7, 7], [2, 2], [3, 3]); // ImageNet stem
    check([2, 4, 5, 5], [3, 4, 1, 1], [1, 1], [0, 0]); // bottleneck 1x1
}

#[test]
fn matches_burn_on_batches_split_between_threads() {
    // Up to 4096 output pixels in the batch the weight gradient is one
    // product per slab of rows over the whole batch (more slabs than rows in
    // the 1x1 case); the forward groups late-layer images into one product.
    check([32, 4, 4, 4], [6, 4, 3, 3], [1, 1], [1, 1]);
    check([37, 3, 8, 8], [5, 3, 3, 3], [2, 2], [1, 1]);
    check([20, 4, 2, 2], [3, 4, 1, 1], [1, 1], [0, 0]);
    // Above 4096 pixels: partial sums over parts of the batch, several
    // images per product within a part, a short last part.
    check([5, 3, 32, 32], [4, 3, 3, 3], [1, 1], [1, 1]);
    check([19, 2, 16, 16], [3, 2, 3, 3], [1, 1], [1, 1]);
    check([9, 2, 48, 48], [2, 2, 1, 1], [2, 2], [0, 0]);
}

#[test]
fn matches_burn_on_awkward_geometries() {
    check([2, 3, 7, 9], [4, 3, 3, 5], [2, 1], [1, 2]); // rectangular, odd sizes
    check([1, 2, 4, 4], [3, 2, 3, 3], [3, 3], [0, 0]); // stride larger than the output
    check([2, 2, 3, 3], [2, 2, 3, 3], [1, 1], [2, 2]); // padding wider than the image's border
    // Stride 1 with output rows as wide as input rows (im2col's shifted-plane path).
    check([2, 3, 6, 7], [4, 3, 3, 1], [1, 1], [2, 0]); // output taller than the input
    check([2, 2, 5, 6], [3, 2, 5, 5], [1, 1], [2, 2]); // 5x5, two zero columns each side
    check([1, 2, 3, 3], [2, 2, 3, 3], [1, 1], [0, 1]); // a single output row
    check([2, 3, 4, 5], [3, 3, 1, 3], [1, 1], [0, 1]); // one kernel row
}

#[test]
fn matches_burn_where_winograd_applies() {
    // 3x3 stride 1 with ≥ 64 channels in and out: F(2x2, 3x3) for the
    // forward and (through the flipped kernel) the input gradient.
    check([2, 64, 8, 8], [64, 64, 3, 3], [1, 1], [1, 1]); // ResNet block
    check([3, 64, 7, 5], [72, 64, 3, 3], [1, 1], [1, 1]); // odd sizes: partial tiles
    check([2, 65, 6, 9], [64, 65, 3, 3], [1, 1], [0, 0]); // no padding
    check([2, 64, 5, 5], [64, 64, 3, 3], [1, 1], [2, 2]); // padding 2
    check([9, 64, 4, 4], [80, 64, 3, 3], [1, 1], [1, 1]); // late layer: images grouped
    check([1, 64, 2, 3], [64, 64, 3, 3], [1, 1], [1, 1]); // smaller than a tile
}

#[test]
fn chained_convolutions_match() {
    // Gradients must flow back through one kernel call into the next.
    let dev = Device::flex().autodiff();
    let normal = Distribution::Normal(0.0, 1.0);
    let x = Tensor::<4>::random([2, 3, 6, 6], normal, &dev);
    let w1 = Tensor::<4>::random([4, 3, 3, 3], normal, &dev);
    let w2 = Tensor::<4>::random([5, 4, 3, 3], normal, &dev);
    let two = |gemm: bool| {
        let x = x.clone().require_grad();
        let (w1, w2) = (w1.clone().require_grad(), w2.clone().require_grad());
        let conv = |a: Tensor<4>, w: Tensor<4>| {
            if gemm {
                gemm_conv(a, w, [1, 1], [1, 1])
            } else {
                conv2d(a, w, None, ConvOptions::new([1, 1], [1, 1], [1, 1], 1))
            }
        };
        let y = conv(conv(x.clone(), w1.clone()), w2.clone());
        let grads = y.clone().powi_scalar(2).sum().backward();
        (y.inner(), x.grad(&grads).unwrap(), w1.grad(&grads).unwrap())
    };
    let (y0, dx0, dw0) = two(false);
    let (y1, dx1, dw1) = two(true);
    for (name, a, b) in [("output", y0, y1), ("dx", dx0, dx1), ("dw1", dw0, dw1)] {
        let tol = 1e-4 * scale(&a);
        let diff = max_abs_diff(a, b);
        assert!(diff <= tol, "{name} differs by {diff} (tolerance {tol})");
    }
}

#[test]
fn results_do_not_depend_on_the_number_of_threads() {
    // Work is split by shape alone (image groups, slabs, batch parts,
    // Winograd chunks), so one thread and three give the same bits. One
    // geometry per path: Winograd (64 channels), im2col with the row-slab
    // weight gradient, im2col with batch parts (> 4096 output pixels).
    let cases = [
        ([6, 64, 8, 8], [64, 64, 3, 3], [1, 1], [1, 1]),
        ([9, 8, 8, 8], [12, 8, 3, 3], [2, 2], [1, 1]),
        ([7, 4, 28, 28], [6, 4, 3, 3], [1, 1], [1, 1]),
    ];
    let dev = Device::flex().autodiff();
    let normal = Distribution::Normal(0.0, 1.0);
    for (x, w, stride, padding) in cases {
        let xt = Tensor::<4>::random(x, normal, &dev);
        let wt = Tensor::<4>::random(w, normal, &dev);
        let run_with = |threads: usize| {
            let pool = rayon::ThreadPoolBuilder::new()
                .num_threads(threads)
                .build()
                .expect("thread pool");
            pool.install(|| {
                let (x, w) = (xt.clone().require_grad(), wt.clone().require_grad());
                let y = gemm_conv(x.clone(), w.clone(), stride, padding);
                let grads = y.clone().powi_scalar(2).sum().backward();
                let bits = |t: Tensor<4>| -> Vec<u32> {
                    t.into_data()
                        .try_to_vec::<f32>()
                        .unwrap()
                        .iter()
                        .map(|v| v.to_bits())
                        .collect()
                };
                [
                    bits(y.inner()),
                    bits(x.grad(&grads).unwrap()),
                    bits(w.grad(&grads).unwrap()),
                ]
            })
        };
        assert_eq!(
            run_with(1),
            run_with(3),
            "x {x:?} w {w:?}: results differ between 1 and 3 threads"
        );
    }
}
