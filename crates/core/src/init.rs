//! Parameter initialisation from the run's own seeded generator, so that
//! the initial weights are a function of the seed alone, whatever the backend.

use burn::module::Param;
use burn::tensor::{Device, Tensor, TensorData};
use rand::Rng;
use rand_chacha::ChaCha8Rng;

fn normal(rng: &mut ChaCha8Rng) -> f32 {
    let u1: f32 = rng.random::<f32>().max(1e-7);
    let u2: f32 = rng.random();
    (-2.0 * u1.ln()).sqrt() * (std::f32::consts::TAU * u2).cos()
}

/// Kaiming-normal, fan-out mode, for ReLU networks (what torchvision's ResNet uses).
pub fn kaiming_conv(rng: &mut ChaCha8Rng, shape: [usize; 4], device: &Device) -> Param<Tensor<4>> {
    let fan_out = shape[0] * shape[2] * shape[3];
    normal_param(rng, shape, (2.0 / fan_out as f32).sqrt(), device)
}

/// Uniform(-1/sqrt(fan_in), 1/sqrt(fan_in)), PyTorch's default for linear layers.
pub fn uniform_fan_in<const D: usize>(
    rng: &mut ChaCha8Rng,
    shape: [usize; D],
    fan_in: usize,
    device: &Device,
) -> Param<Tensor<D>> {
    uniform(rng, shape, 1.0 / (fan_in as f32).sqrt(), device)
}

/// Normal(0, std²) values of the given shape.
pub fn normal_param<const D: usize>(
    rng: &mut ChaCha8Rng,
    shape: [usize; D],
    std: f32,
    device: &Device,
) -> Param<Tensor<D>> {
    let n: usize = shape.iter().product();
    let values: Vec<f32> = (0..n).map(|_| normal(rng) * std).collect();
    Param::from_tensor(Tensor::from_data(TensorData::new(values, shape), device))
}

/// Xavier (Glorot) uniform: U(-a, a) with a = sqrt(6 / (fan_in + fan_out)).
pub fn xavier_uniform<const D: usize>(
    rng: &mut ChaCha8Rng,
    shape: [usize; D],
    fan_in: usize,
    fan_out: usize,
    device: &Device,
) -> Param<Tensor<D>> {
    uniform(rng, shape, (6.0 / (fan_in + fan_out) as f32).sqrt(), device)
}

/// U(-bound, bound) values of the given shape.
fn uniform<const D: usize>(
    rng: &mut ChaCha8Rng,
    shape: [usize; D],
    bound: f32,
    device: &Device,
) -> Param<Tensor<D>> {
    let n: usize = shape.iter().product();
    let values: Vec<f32> = (0..n)
        .map(|_| (rng.random::<f32>() * 2.0 - 1.0) * bound)
        .collect();
    Param::from_tensor(Tensor::from_data(TensorData::new(values, shape), device))
}
