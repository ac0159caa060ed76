//! Training with batch norm, the shortcut and ReLU fused
//! (`kernels::conv_bn_forward` on the autodiff flex backend) against the
//! same layers applied one after another (our batch norm, then burn's add
//! and ReLU): output, every gradient (input, weight, γ, β, shortcut) and
//! the running statistics, bit for bit.
#![cfg(feature = "flex")]

use burn::nn::conv::{Conv2d, Conv2dConfig};
use burn::nn::{BatchNorm, BatchNormConfig, PaddingConfig2d};
use burn::tensor::activation::relu;
use burn::tensor::{Device, Distribution, Tensor};
use reusebench_kernels::{Epilogue, batch_norm_forward, conv_bn_forward, conv2d_forward};

/// A convolution and a batch norm with non-trivial γ and β, built the same
/// way every call (clones of a layer would share running statistics).
fn layers(cin: usize, cout: usize, dev: &Device) -> (Conv2d, BatchNorm) {
    let conv = Conv2dConfig::new([cin, cout], [3, 3])
        .with_padding(PaddingConfig2d::Explicit(1, 1, 1, 1))
        .with_bias(false)
        .init(dev);
    let w = Tensor::<4>::from_floats(
        burn::tensor::TensorData::new(
            (0..cout * cin * 9)
                .map(|i| ((i * 37 % 101) as f32 / 101.0 - 0.5) * 0.4)
                .collect::<Vec<f32>>(),
            [cout, cin, 3, 3],
        ),
        dev,
    );
    let conv = Conv2d {
        weight: burn::module::Param::from_tensor(w),
        ..conv
    };
    let mut bn = BatchNormConfig::new(cout).init(dev);
    let ramp: Vec<f32> = (0..cout).map(|c| c as f32 / cout as f32).collect();
    let ramp = Tensor::<1>::from_floats(ramp.as_slice(), dev);
    let leaf = |t: Tensor<1>| t.detach().require_grad();
    bn.gamma = bn
        .gamma
        .map(|g| leaf(g + ramp.clone().mul_scalar(0.7) - 0.3));
    bn.beta = bn.beta.map(|b| leaf(b + ramp.clone().mul_scalar(-0.4)));
    (conv, bn)
}

fn bits<const D: usize>(t: Tensor<D>) -> Vec<u32> {
    let values = t.into_data().try_to_vec::<f32>().unwrap();
    values.iter().map(|v| v.to_bits()).collect()
}

/// Output, gradients and running statistics of one pass, as bits.
fn pass(fused: bool, shortcut: bool, x: &Tensor<4>, r: &Tensor<4>, dev: &Device) -> Vec<Vec<u32>> {
    let (cin, cout) = (x.dims()[1], r.dims()[1]);
    let (conv, bn) = layers(cin, cout, dev);
    let x = x.clone().require_grad();
    let r = r.clone().require_grad();
    let w = conv.weight.val();
    let y = if fused {
        let then = if shortcut {
            Epilogue::AddRelu(r.clone())
        } else {
            Epilogue::Relu
        };
        conv_bn_forward(&conv, &bn, x.clone(), then)
    } else {
        let y = batch_norm_forward(&bn, conv2d_forward(&conv, x.clone()));
        if shortcut {
            relu(y + r.clone())
        } else {
            relu(y)
        }
    };
    // A loss whose gradient differs from value to value.
    let grads = (y.clone() * y.clone().detach().add_scalar(0.3))
        .sum()
        .backward();
    let mut out = vec![
        bits(y.inner()),
        bits(x.grad(&grads).unwrap()),
        bits(w.grad(&grads).unwrap()),
        bits(bn.gamma.grad(&grads).unwrap()),
        bits(bn.beta.grad(&grads).unwrap()),
        bits(bn.running_mean.value()),
        bits(bn.running_var.value()),
    ];
    if shortcut {
        out.push(bits(r.grad(&grads).unwrap()));
    }
    out
}

#[test]
fn fused_training_gives_the_same_bits_as_the_layers_apart() {
    let dev = Device::flex().autodiff();
    let normal = Distribution::Normal(0.0, 1.0);
    // 64 channels: the Winograd path; 8: im2col.
    for (cin, cout, size) in [(8, 8, 6), (64, 64, 4)] {
        let x = Tensor::<4>::random([3, cin, size, size], normal, &dev);
        let r = Tensor::<4>::random([3, cout, size, size], normal, &dev);
        for shortcut in [false, true] {
            let apart = pass(false, shortcut, &x, &r, &dev);
            let fused = pass(true, shortcut, &x, &r, &dev);
            assert_eq!(apart.len(), fused.len());
            for (k, (a, f)) in apart.iter().zip(&fused).enumerate() {
                let differing = a.iter().zip(f).filter(|(a, f)| a != f).count();
                assert_eq!(
                    differing,
                    0,
                    "{cin}->{cout} shortcut {shortcut}: quantity {k} differs in {differing} of {} values",
                    a.len()
                );
            }
            // ReLU did something: some outputs are exactly 0, some are not.
            let zeros = fused[0].iter().filter(|&&b| b == 0).count();
            assert!(zeros > 0 && zeros < fused[0].len(), "{zeros}");
        }
    }
}
