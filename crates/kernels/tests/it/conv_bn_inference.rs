//! Inference with the batch norm folded into the convolution
//! (`kernels::conv_bn_forward`) against the unfolded layers burn runs:
//! every epilogue, strided and 1x1 convolutions, non-trivial running
//! statistics, and a shared convolution output (written into a copy).
#![cfg(feature = "flex")]

use burn::nn::conv::{Conv2d, Conv2dConfig};
use burn::nn::{BatchNorm, BatchNormConfig, PaddingConfig2d};
use burn::tensor::activation::relu;
use burn::tensor::{Device, Distribution, Tensor};
use reusebench_kernels::{Epilogue, batch_norm_forward, conv_bn_forward, conv2d_forward};

fn layers(cin: usize, cout: usize, k: usize, stride: usize, dev: &Device) -> (Conv2d, BatchNorm) {
    let p = k / 2;
    let conv = Conv2dConfig::new([cin, cout], [k, k])
        .with_stride([stride, stride])
        .with_padding(PaddingConfig2d::Explicit(p, p, p, p))
        .with_bias(false)
        .init(dev);
    let mut bn = BatchNormConfig::new(cout).init(dev);
    let ramp: Vec<f32> = (0..cout).map(|c| c as f32 / cout as f32).collect();
    let ramp = Tensor::<1>::from_floats(ramp.as_slice(), dev);
    bn.gamma = bn.gamma.map(|g| g + ramp.clone().mul_scalar(0.7) - 0.3);
    bn.beta = bn.beta.map(|b| b + ramp.clone().mul_scalar(-0.4));
    bn.running_mean.update(ramp.clone().mul_scalar(0.5) - 0.1);
    bn.running_var.update(ramp.mul_scalar(2.0).add_scalar(0.05));
    (conv, bn)
}

fn max_abs_diff(a: Tensor<4>, b: Tensor<4>) -> f32 {
    assert_eq!(a.dims(), b.dims());
    (a - b).abs().max().into_scalar::<f32>()
}

#[test]
fn folded_batch_norm_matches_the_layers() {
    let dev = Device::flex();
    let normal = Distribution::Normal(0.0, 1.0);
    for (cin, cout, k, stride, hw) in [
        (3, 8, 3, 1, 9),
        (8, 16, 3, 2, 8),
        (16, 8, 1, 1, 5),
        (64, 64, 3, 1, 6),
    ] {
        let (conv, bn) = layers(cin, cout, k, stride, &dev);
        let x = Tensor::<4>::random([3, cin, hw, hw], normal, &dev);
        let reference = bn.forward(conv.forward(x.clone()));
        let residual = Tensor::<4>::random(reference.dims(), normal, &dev);
        let case = format!("{cin}->{cout} k{k} s{stride} {hw}x{hw}");
        let scale = reference.clone().abs().max().into_scalar::<f32>().max(1.0);
        let cases = [
            (Epilogue::None, reference.clone()),
            (Epilogue::Relu, relu(reference.clone())),
            (
                Epilogue::AddRelu(residual.clone()),
                relu(reference.clone() + residual.clone()),
            ),
        ];
        for (i, (then, expected)) in cases.into_iter().enumerate() {
            let d = max_abs_diff(conv_bn_forward(&conv, &bn, x.clone(), then), expected);
            assert!(d < 1e-4 * scale, "{case}, epilogue {i}: differs by {d}");
        }
        // The residual is read, never written.
        assert_eq!(max_abs_diff(residual.clone(), residual), 0.0);
    }
}

#[test]
fn training_keeps_the_unfolded_layers() {
    // On autodiff, in training, the batch statistics apply: nothing is
    // folded, and the result is exactly the layers' own.
    let dev = Device::flex().autodiff();
    let (conv, bn) = layers(4, 6, 3, 1, &dev);
    let x = Tensor::<4>::random([2, 4, 5, 5], Distribution::Normal(0.0, 1.0), &dev);
    let y = conv_bn_forward(&conv, &bn, x.clone(), Epilogue::Relu);
    let expected = relu(batch_norm_forward(&bn, conv2d_forward(&conv, x)));
    assert_eq!(max_abs_diff(y.inner(), expected.inner()), 0.0);
}
