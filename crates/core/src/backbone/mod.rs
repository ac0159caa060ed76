//! Backbones: feature extractors that heads and methods build on.

mod resnet;
pub mod vit;

use std::path::PathBuf;

use burn::tensor::Device;
use rand_chacha::ChaCha8Rng;
pub use resnet::{Block, BlockKind, Downsample, ResNet, ResNetSpec};
use serde::{Deserialize, Serialize};

use crate::error::CoreError;

/// Which architecture, how wide, and where its starting weights come from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BackboneConfig {
    #[serde(default)]
    pub arch: Arch,
    /// Base number of filters: 64 is the standard ResNet, 20 the "reduced" one.
    #[serde(default = "default_width")]
    pub width: usize,
    /// ImageNet stems only: keep the 3x3 stride-2 max-pool (default `true`);
    /// `false` runs an ImageNet model on small images (32x32) with 4x less
    /// downsampling. The weights are the same either way.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub maxpool: Option<bool>,
    /// A checkpoint in the harness's own format (written by `pretrain` or
    /// `reusebench convert`); `None` starts from random weights.
    #[serde(default)]
    pub checkpoint: Option<PathBuf>,
    /// Weights in torchvision's ResNet layout: `.pth` / `.pt` (PyTorch
    /// pickle) or `.safetensors`. Batch-norm running statistics included.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub weights: Option<PathBuf>,
    /// The dictionary inside a `.pth` file that holds the state dict
    /// (`state_dict`, `model`, ...); the file's top level when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub weights_key: Option<String>,
    /// Load the checkpoint's classifier (`fc`) into the protocol's head,
    /// which must then have the same number of classes; dropped otherwise.
    #[serde(default, skip_serializing_if = "is_false")]
    pub keep_head: bool,
    /// Accept a checkpoint with missing, unused or mis-shaped tensors (they
    /// keep their random initialisation and are listed in the load report).
    #[serde(default, skip_serializing_if = "is_false")]
    pub allow_partial: bool,
}

fn is_false(b: &bool) -> bool {
    !*b
}

fn default_width() -> usize {
    64
}

impl Default for BackboneConfig {
    fn default() -> Self {
        Self {
            arch: Arch::default(),
            width: default_width(),
            maxpool: None,
            checkpoint: None,
            weights: None,
            weights_key: None,
            keep_head: false,
            allow_partial: false,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub enum Arch {
    /// ResNet-18 with a 3x3 stride-1 stem and no max-pool.
    #[default]
    #[serde(rename = "resnet18-cifar")]
    ResNet18Cifar,
    /// torchvision's ResNet-18.
    #[serde(rename = "resnet18")]
    ResNet18,
    /// torchvision's ResNet-50 (bottleneck blocks).
    #[serde(rename = "resnet50")]
    ResNet50,
}

impl Arch {
    pub fn name(self) -> &'static str {
        match self {
            Arch::ResNet18Cifar => "resnet18-cifar",
            Arch::ResNet18 => "resnet18",
            Arch::ResNet50 => "resnet50",
        }
    }

    fn block(self) -> BlockKind {
        match self {
            Arch::ResNet18Cifar | Arch::ResNet18 => BlockKind::Basic,
            Arch::ResNet50 => BlockKind::Bottleneck,
        }
    }
}

impl std::str::FromStr for Arch {
    type Err = CoreError;

    fn from_str(s: &str) -> Result<Self, CoreError> {
        [Arch::ResNet18Cifar, Arch::ResNet18, Arch::ResNet50]
            .into_iter()
            .find(|a| a.name() == s)
            .ok_or_else(|| {
                CoreError::config(
                    "arch",
                    format!("unknown arch `{s}`; use resnet18-cifar, resnet18 or resnet50"),
                )
            })
    }
}

impl BackboneConfig {
    /// The weights files this config reads.
    pub fn files(&self) -> Vec<std::path::PathBuf> {
        self.checkpoint
            .iter()
            .chain(&self.weights)
            .cloned()
            .collect()
    }

    pub fn feature_dim(&self) -> usize {
        8 * self.width * self.arch.block().expansion()
    }

    pub fn spec(&self) -> ResNetSpec {
        let imagenet_stem = self.arch != Arch::ResNet18Cifar;
        ResNetSpec {
            imagenet_stem,
            maxpool: imagenet_stem && self.maxpool.unwrap_or(true),
            block: self.arch.block(),
            layers: match self.arch {
                Arch::ResNet18Cifar | Arch::ResNet18 => [2, 2, 2, 2],
                Arch::ResNet50 => [3, 4, 6, 3],
            },
            width: self.width,
        }
    }

    /// A randomly initialised backbone of this shape (weights not applied).
    pub fn build(&self, rng: &mut ChaCha8Rng, device: &Device) -> ResNet {
        ResNet::new(self.spec(), rng, device)
    }

    pub fn validate(&self) -> Result<(), CoreError> {
        let bad = |key: &str, m: String| Err(CoreError::config(&format!("backbone.{key}"), m));
        if self.width == 0 {
            return bad("width", "must be >= 1".into());
        }
        if self.arch == Arch::ResNet18Cifar && self.maxpool.is_some() {
            return bad(
                "maxpool",
                "maxpool applies to the ImageNet stems (resnet18, resnet50), not resnet18-cifar"
                    .into(),
            );
        }
        if self.checkpoint.is_some() && self.weights.is_some() {
            return bad(
                "weights",
                "give either checkpoint (harness format) or weights (torchvision layout), not both"
                    .into(),
            );
        }
        if self.weights.is_none() {
            for (set, key) in [
                (self.weights_key.is_some(), "weights_key"),
                (self.keep_head, "keep_head"),
                (self.allow_partial, "allow_partial"),
            ] {
                if set {
                    return bad(key, format!("{key} applies to `weights`, which is not set"));
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(config: BackboneConfig) -> String {
        config.validate().unwrap_err().to_string()
    }

    #[test]
    fn contradictory_weight_settings_are_rejected() {
        let cifar_maxpool = BackboneConfig {
            maxpool: Some(false),
            ..Default::default()
        };
        assert!(err(cifar_maxpool).contains("maxpool"));
        let both = BackboneConfig {
            arch: Arch::ResNet18,
            checkpoint: Some("a.safetensors".into()),
            weights: Some("b.pth".into()),
            ..Default::default()
        };
        assert!(err(both).contains("not both"));
        let orphan = BackboneConfig {
            keep_head: true,
            ..Default::default()
        };
        assert!(err(orphan).contains("keep_head"));
        assert!("resnet34".parse::<Arch>().is_err());
        assert_eq!("resnet50".parse::<Arch>().unwrap(), Arch::ResNet50);
    }

    #[test]
    fn feature_dims_follow_the_block_type() {
        let dim = |arch, width| {
            BackboneConfig {
                arch,
                width,
                ..Default::default()
            }
            .feature_dim()
        };
        assert_eq!(dim(Arch::ResNet18Cifar, 20), 160);
        assert_eq!(dim(Arch::ResNet18, 64), 512);
        assert_eq!(dim(Arch::ResNet50, 64), 2048);
    }
}
