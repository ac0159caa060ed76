//! A backbone with a linear head: what every classification method trains.

use burn::module::Module;
use burn::nn::{Initializer, Linear, LinearConfig};
use burn::tensor::{Device, Tensor};
use rand_chacha::ChaCha8Rng;

use crate::backbone::{BackboneConfig, ResNet};
use crate::init::uniform_fan_in;

#[derive(Module, Debug)]
pub struct Classifier {
    pub backbone: ResNet,
    pub head: Linear,
}

/// A fresh linear head (PyTorch's default initialisation, from `rng`).
pub fn linear_head(
    rng: &mut ChaCha8Rng,
    features: usize,
    classes: usize,
    device: &Device,
) -> Linear {
    let mut head = LinearConfig::new(features, classes)
        .with_initializer(Initializer::Zeros)
        .init(device);
    head.weight = uniform_fan_in(rng, [features, classes], features, device);
    head.bias = Some(uniform_fan_in(rng, [classes], features, device));
    head
}

/// A randomly initialised backbone of the given config (checkpoint not applied).
pub fn build_backbone(config: &BackboneConfig, rng: &mut ChaCha8Rng, device: &Device) -> ResNet {
    config.build(rng, device)
}

impl Classifier {
    pub fn forward(&self, images: Tensor<4>) -> Tensor<2> {
        self.head.forward(self.backbone.forward(images))
    }
}
