//! The flex transformer kernels (`kernels::transformer`: linear with GELU,
//! LayerNorm, attention) against burn's own operations: output and every gradient, on
//! the flex backend with autodiff, and without autodiff.
#![cfg(feature = "flex")]

use burn::nn::{LayerNorm, LayerNormConfig};
use burn::tensor::activation::gelu as burn_gelu;
use burn::tensor::module::linear;
use burn::tensor::{Device, Distribution, Tensor};
use reusebench_kernels::{
    layer_norm_forward, linear_bias, self_attention, self_attention_composed,
};

fn max_abs_diff<const D: usize>(a: Tensor<D>, b: Tensor<D>) -> f32 {
    assert_eq!(a.dims(), b.dims());
    (a - b).abs().max().into_scalar::<f32>()
}

fn input(shape: [usize; 3], std: f64, dev: &Device) -> Tensor<3> {
    Tensor::<3>::random(shape, Distribution::Normal(0.0, std), dev)
}

/// Output and input gradient of `ours` and `burns` on the same input, with
/// a random upstream gradient.
fn compare(
    x: Tensor<3>,
    ours: impl Fn(Tensor<3>) -> Tensor<3>,
    burns: impl Fn(Tensor<3>) -> Tensor<3>,
) -> (f32, f32) {
    let dev = x.device();
    let r = input(burns(x.clone()).dims(), 1.0, &dev);
    let run = |f: &dyn Fn(Tensor<3>) -> Tensor<3>| {
        let x = x.clone().require_grad();
        let y = f(x.clone());
        let grads = (y.clone() * r.clone()).sum().backward();
        (y.inner(), x.grad(&grads).unwrap())
    };
    let (y0, dx0) = run(&burns);
    let (y1, dx1) = run(&ours);
    (max_abs_diff(y0, y1), max_abs_diff(dx0, dx1))
}

/// The fused linear layer (bias, and GELU when asked) against burn's
/// `linear` and `gelu`: output and the gradients of input, weight and bias.
#[test]
fn linear_matches_burn_with_and_without_gelu() {
    let dev = Device::flex().autodiff();
    for gelu in [false, true] {
        // Wide inputs so that GELU sees both tails, where erf saturates.
        let x = input([3, 17, 40], 1.0, &dev);
        let w = Tensor::<2>::random([40, 24], Distribution::Normal(0.0, 0.5), &dev);
        let b = Tensor::<1>::random([24], Distribution::Normal(0.0, 1.0), &dev);
        let r = input([3, 17, 24], 1.0, &dev);
        let run = |fused: bool| {
            let (x, w, b) = (
                x.clone().require_grad(),
                w.clone().require_grad(),
                b.clone().require_grad(),
            );
            let y = match fused {
                true => linear_bias(x.clone(), w.clone(), b.clone(), gelu),
                false => {
                    let y = linear(x.clone(), w.clone(), Some(b.clone()));
                    if gelu { burn_gelu(y) } else { y }
                }
            };
            let grads = (y.clone() * r.clone()).sum().backward();
            let g = |t: &Tensor<3>| t.grad(&grads).unwrap();
            (
                y.inner(),
                g(&x),
                w.grad(&grads).unwrap(),
                b.grad(&grads).unwrap(),
            )
        };
        let (y0, dx0, dw0, db0) = run(false);
        let (y1, dx1, dw1, db1) = run(true);
        // A few ulp of values up to about 20 (erf within 5e-7, times z/2).
        let case = format!("gelu {gelu}");
        let d = max_abs_diff(y0, y1);
        assert!(d < 1e-5, "{case}: output differs by {d}");
        let d = max_abs_diff(dx0, dx1);
        assert!(d < 1e-5, "{case}: dx differs by {d}");
        let d = max_abs_diff(dw0, dw1);
        assert!(d < 2e-5, "{case}: dw differs by {d}");
        let d = max_abs_diff(db0, db1);
        assert!(d < 2e-5, "{case}: db differs by {d}");
    }
}

/// A layer with non-trivial γ and β.
fn layer(d: usize, eps: f64, dev: &Device) -> LayerNorm {
    let mut ln = LayerNormConfig::new(d).with_epsilon(eps).init(dev);
    let ramp: Vec<f32> = (0..d).map(|c| (c as f32 / d as f32) - 0.3).collect();
    let ramp = Tensor::<1>::from_floats(ramp.as_slice(), dev);
    ln.gamma = ln.gamma.map(|g| (g + ramp.clone()).detach().require_grad());
    ln.beta = ln
        .beta
        .map(|beta| beta.map(|b| (b - ramp.clone().mul_scalar(0.5)).detach().require_grad()));
    ln
}

#[test]
fn layer_norm_matches_burn() {
    let dev = Device::flex().autodiff();
    for (shape, offset, eps) in [
        ([2, 65, 48], 0.0, 1e-6),
        ([3, 5, 7], 50.0, 1e-5), // a large mean: the centred variance must stay accurate
        ([1, 70, 1], 0.0, 1e-6), // one value per row: only ε keeps it finite
    ] {
        let x = input(shape, 2.0, &dev).add_scalar(offset);
        let r = input(shape, 1.0, &dev);
        let run = |fused: bool| {
            let ln = layer(shape[2], eps, &dev);
            let x = x.clone().require_grad();
            let y = match fused {
                true => layer_norm_forward(&ln, x.clone(), eps),
                false => ln.forward(x.clone()),
            };
            let grads = (y.clone() * r.clone()).sum().backward();
            let dx = x.grad(&grads).unwrap();
            let dg = ln.gamma.grad(&grads).unwrap();
            let db = ln.beta.as_ref().unwrap().grad(&grads).unwrap();
            (y.inner(), dx, dg, db)
        };
        let (y0, dx0, dg0, db0) = run(false);
        let (y1, dx1, dg1, db1) = run(true);
        let case = format!("shape {shape:?} offset {offset}");
        let d = max_abs_diff(y0, y1);
        assert!(d < 2e-5, "{case}: output differs by {d}");
        let d = max_abs_diff(dx0, dx1);
        assert!(d < 2e-4, "{case}: dx differs by {d}");
        let d = max_abs_diff(dg0, dg1);
        assert!(d < 1e-4, "{case}: dγ differs by {d}");
        let d = max_abs_diff(db0, db1);
        assert!(d < 1e-4, "{case}: dβ differs by {d}");
    }
}

#[test]
fn inference_matches_burn_too() {
    let dev = Device::flex();
    let x = input([2, 10, 32], 2.0, &dev);
    let ln = LayerNormConfig::new(32).with_epsilon(1e-6).init(&dev);
    let (w, b) = (
        Tensor::<2>::random([32, 8], Distribution::Normal(0.0, 0.5), &dev),
        Tensor::<1>::random([8], Distribution::Normal(0.0, 1.0), &dev),
    );
    let burns = burn_gelu(linear(x.clone(), w.clone(), Some(b.clone())));
    assert!(max_abs_diff(linear_bias(x.clone(), w, b, true), burns) < 1e-5);
    assert!(max_abs_diff(layer_norm_forward(&ln, x.clone(), 1e-6), ln.forward(x)) < 2e-5);
}

/// Same input, one thread or several: the row reductions (dγ, dβ, the
/// bias's) add in a fixed order, attention's products run per image and the
/// linear layer's split by output blocks, so the bits agree.
#[test]
fn gradients_do_not_depend_on_the_thread_count() {
    let dev = Device::flex().autodiff();
    let x = input([4, 65, 48], 1.0, &dev);
    let w = Tensor::<2>::random([16, 40], Distribution::Normal(0.0, 0.2), &dev);
    let grads_with = |threads: usize| {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()
            .unwrap();
        pool.install(|| {
            let ln = layer(48, 1e-6, &dev);
            let y = layer_norm_forward(&ln, x.clone().require_grad(), 1e-6);
            let w = w.clone().require_grad();
            let b = Tensor::<1>::zeros([40], &dev).require_grad();
            let y = linear_bias(self_attention(y, 2), w.clone(), b.clone(), true);
            let grads = y.sum().backward();
            let dw = w.grad(&grads).unwrap().into_data();
            let db = b.grad(&grads).unwrap().into_data();
            (ln.gamma.grad(&grads).unwrap().into_data(), dw, db)
        })
    };
    assert_eq!(grads_with(1), grads_with(3));
}

/// The fused attention against burn's composition (`self_attention_composed`):
/// output and gradient of the packed input, at ViT shapes (65 tokens) and
/// with one head.
#[test]
fn attention_matches_burn() {
    let dev = Device::flex().autodiff();
    for (shape, heads) in [
        ([2, 65, 3 * 48], 3),
        ([3, 7, 3 * 8], 1),
        ([1, 1, 3 * 12], 4),
    ] {
        let x = input(shape, 1.5, &dev);
        let (dy, dx) = compare(
            x,
            |t| self_attention(t, heads),
            |t| self_attention_composed(t, heads),
        );
        assert!(dy < 1e-5, "{shape:?}/{heads}: output differs by {dy}");
        assert!(dx < 1e-5, "{shape:?}/{heads}: gradient differs by {dx}");
    }
    // Without autodiff too.
    let x = input([2, 9, 3 * 16], 1.0, &Device::flex());
    let d = max_abs_diff(self_attention(x.clone(), 2), self_attention_composed(x, 2));
    assert!(d < 1e-5, "inference: differs by {d}");
}
