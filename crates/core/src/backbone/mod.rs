//! Backbones: feature extractors that heads and methods build on.

mod resnet;

use std::path::PathBuf;

pub use resnet::{BasicBlock, ResNet};
use serde::{Deserialize, Serialize};

/// Which architecture, how wide, and where its starting weights come from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BackboneConfig {
    #[serde(default)]
    pub arch: Arch,
    /// Base number of filters: 64 is the standard ResNet-18, 20 the "reduced" one.
    #[serde(default = "default_width")]
    pub width: usize,
    /// A checkpoint written by the `pretrain` protocol (safetensors); `None`
    /// starts from random weights.
    #[serde(default)]
    pub checkpoint: Option<PathBuf>,
}

fn default_width() -> usize {
    64
}

impl Default for BackboneConfig {
    fn default() -> Self {
        Self {
            arch: Arch::default(),
            width: default_width(),
            checkpoint: None,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub enum Arch {
    /// ResNet-18 with a 3x3 stride-1 stem and no max-pool.
    #[default]
    #[serde(rename = "resnet18-cifar")]
    ResNet18Cifar,
}

impl BackboneConfig {
    pub fn feature_dim(&self) -> usize {
        8 * self.width
    }
}
