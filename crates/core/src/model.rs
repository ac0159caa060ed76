//! A backbone with a linear head: what every classification method trains.
//! Side-tuning adds a side branch whose features blend with the backbone's.

use burn::module::Module;
use burn::nn::{Initializer, Linear, LinearConfig};
use burn::tensor::{Device, Tensor};
use rand_chacha::ChaCha8Rng;

use crate::backbone::{BackboneConfig, ResNet};
use crate::init::uniform_fan_in;

/// Side-tuning's side network: a small ResNet and a projection to the
/// backbone's feature size; features = α·base + (1 − α)·side.
#[derive(Module, Debug)]
pub struct SideBranch {
    pub net: ResNet,
    pub proj: Linear,
    /// Weight of the (frozen) base features in the blend.
    pub alpha: f64,
}

#[derive(Module, Debug)]
pub struct Classifier {
    pub backbone: ResNet,
    pub head: Linear,
    pub side: Option<SideBranch>,
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
    pub fn new(backbone: ResNet, head: Linear) -> Self {
        Self {
            backbone,
            head,
            side: None,
        }
    }

    /// The features the head sees.
    pub fn features(&self, images: Tensor<4>) -> Tensor<2> {
        match &self.side {
            None => self.backbone.forward(images),
            Some(side) => {
                let base = self.backbone.forward(images.clone());
                let own = side.proj.forward(side.net.forward(images));
                base * side.alpha + own * (1.0 - side.alpha)
            }
        }
    }

    pub fn forward(&self, images: Tensor<4>) -> Tensor<2> {
        self.head.forward(self.features(images))
    }
}
