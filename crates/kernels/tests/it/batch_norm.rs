//! The flex batch-norm kernel (`kernels::batch_norm`) against burn's own
//! training-mode batch norm: output, gradients for the input, γ and β, and
//! the running statistics the layer keeps.
#![cfg(feature = "flex")]

use burn::nn::{BatchNorm, BatchNormConfig};
use burn::tensor::{Device, Distribution, Tensor};
use reusebench_kernels::batch_norm_forward;

fn max_abs_diff<const D: usize>(a: Tensor<D>, b: Tensor<D>) -> f32 {
    assert_eq!(a.dims(), b.dims());
    (a - b).abs().max().into_scalar::<f32>()
}

/// A layer with non-trivial γ and β (deterministic, so that each run gets
/// its own copy: clones of a layer share their running statistics).
fn layer(channels: usize, dev: &Device) -> BatchNorm {
    let mut bn = BatchNormConfig::new(channels).init(dev);
    let ramp: Vec<f32> = (0..channels).map(|c| c as f32).collect();
    let ramp = Tensor::<1>::from_floats(ramp.as_slice(), dev);
    let leaf = |t: Tensor<1>| match dev.is_autodiff() {
        true => t.detach().require_grad(),
        false => t,
    };
    bn.gamma = bn.gamma.map(|g| leaf(g + ramp.clone().mul_scalar(0.3)));
    bn.beta = bn.beta.map(|b| leaf(b + ramp.clone().mul_scalar(-0.2)));
    bn
}

fn check(shape: [usize; 4], offset: f32) {
    let dev = Device::flex().autodiff();
    let normal = Distribution::Normal(0.0, 2.0);
    let x = Tensor::<4>::random(shape, normal, &dev).add_scalar(offset);
    let r = Tensor::<4>::random(shape, normal, &dev);
    let run = |fused: bool| {
        let bn = layer(shape[1], &dev);
        let x = x.clone().require_grad();
        let y = if fused {
            batch_norm_forward(&bn, x.clone())
        } else {
            bn.forward(x.clone())
        };
        let grads = (y.clone() * r.clone()).sum().backward();
        let dx = x.grad(&grads).unwrap();
        let dg = bn.gamma.grad(&grads).unwrap();
        let db = bn.beta.grad(&grads).unwrap();
        let mean = bn.running_mean.value();
        let var = bn.running_var.value();
        (y.inner(), dx, dg, db, mean, var)
    };
    let (y0, dx0, dg0, db0, m0, v0) = run(false);
    let (y1, dx1, dg1, db1, m1, v1) = run(true);
    let case = format!("shape {shape:?} offset {offset}");
    let tol = 2e-4;
    let d = max_abs_diff(y0, y1);
    assert!(d < tol, "{case}: output differs by {d}");
    let d = max_abs_diff(dx0, dx1);
    assert!(d < tol, "{case}: dx differs by {d}");
    let scale = dg0.clone().abs().max().into_scalar::<f32>().max(1.0);
    let d = max_abs_diff(dg0, dg1);
    assert!(d < tol * scale, "{case}: dγ differs by {d}");
    let scale = db0.clone().abs().max().into_scalar::<f32>().max(1.0);
    let d = max_abs_diff(db0, db1);
    assert!(d < tol * scale, "{case}: dβ differs by {d}");
    let d = max_abs_diff(m0, m1);
    assert!(d < 1e-5, "{case}: running mean differs by {d}");
    let d = max_abs_diff(v0, v1);
    assert!(d < 1e-4, "{case}: running variance differs by {d}");
}

#[test]
fn matches_burn_in_training() {
    check([4, 3, 5, 5], 0.0);
    check([2, 6, 4, 3], 0.0);
    check([1, 2, 1, 1], 0.5); // one value per channel would divide by zero without ε
    check([8, 4, 2, 2], 100.0); // a large mean: the centred variance must stay accurate
}

#[test]
fn leaves_evaluation_to_burn() {
    let dev = Device::flex();
    let x = Tensor::<4>::random([2, 3, 4, 4], Distribution::Normal(0.0, 1.0), &dev);
    let bn = layer(3, &dev);
    let d = max_abs_diff(bn.forward(x.clone()), batch_norm_forward(&bn, x));
    assert_eq!(d, 0.0);
}
