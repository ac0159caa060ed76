//! Backbones: feature extractors that heads and methods build on.

mod resnet;
pub mod vit;

use std::path::PathBuf;

use burn::module::Module;
use burn::nn::BatchNorm;
use burn::tensor::{Device, Tensor};
use rand_chacha::ChaCha8Rng;
pub use resnet::{Block, BlockKind, Downsample, ResNet, ResNetSpec};
use serde::{Deserialize, Serialize};
use vit::{Vit, VitSpec};

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
    /// ViT only (`arch: vit`, or overriding a preset's value): patch side,
    /// token width, blocks, attention heads, MLP width as a multiple of
    /// `dim`, and the image side the position embeddings are for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub patch: Option<usize>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dim: Option<usize>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub depth: Option<usize>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub heads: Option<usize>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mlp_ratio: Option<usize>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image_size: Option<usize>,
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
            patch: None,
            dim: None,
            depth: None,
            heads: None,
            mlp_ratio: None,
            image_size: None,
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
    /// A vision transformer shaped by `patch`, `dim`, `depth`, `heads`,
    /// `mlp_ratio` and `image_size` (see `backbone::vit`).
    #[serde(rename = "vit")]
    Vit,
    /// CPU-sized ViT for 32 px images: patch 4, dim 192, depth 6, 3 heads, MLP 4x.
    #[serde(rename = "vit-tiny")]
    VitTiny,
    /// torchvision's `vit_b_16`: 224 px, patch 16, dim 768, depth 12, 12 heads, MLP 4x.
    #[serde(rename = "vit-b-16")]
    VitB16,
}

const ARCHES: [Arch; 6] = [
    Arch::ResNet18Cifar,
    Arch::ResNet18,
    Arch::ResNet50,
    Arch::Vit,
    Arch::VitTiny,
    Arch::VitB16,
];

impl Arch {
    pub fn name(self) -> &'static str {
        match self {
            Arch::ResNet18Cifar => "resnet18-cifar",
            Arch::ResNet18 => "resnet18",
            Arch::ResNet50 => "resnet50",
            Arch::Vit => "vit",
            Arch::VitTiny => "vit-tiny",
            Arch::VitB16 => "vit-b-16",
        }
    }

    pub fn is_vit(self) -> bool {
        matches!(self, Arch::Vit | Arch::VitTiny | Arch::VitB16)
    }

    fn block(self) -> BlockKind {
        match self {
            Arch::ResNet50 => BlockKind::Bottleneck,
            _ => BlockKind::Basic,
        }
    }

    /// A preset's ViT shape: (patch, dim, depth, heads, mlp_ratio, image_size).
    fn vit_preset(self) -> Option<[usize; 6]> {
        match self {
            Arch::VitTiny => Some([4, 192, 6, 3, 4, 32]),
            Arch::VitB16 => Some([16, 768, 12, 12, 4, 224]),
            _ => None,
        }
    }
}

impl std::str::FromStr for Arch {
    type Err = CoreError;

    fn from_str(s: &str) -> Result<Self, CoreError> {
        ARCHES.into_iter().find(|a| a.name() == s).ok_or_else(|| {
            let names: Vec<&str> = ARCHES.iter().map(|a| a.name()).collect();
            CoreError::config(
                "arch",
                format!("unknown arch `{s}`; use one of {}", names.join(", ")),
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
        match self.vit_spec() {
            Ok(Some(vit)) => vit.dim,
            _ => 8 * self.width * self.arch.block().expansion(),
        }
    }

    /// The ViT's shape (the preset's, each key the config sets overriding
    /// it); `None` for a ResNet. A missing or inconsistent key is an error
    /// naming it.
    pub fn vit_spec(&self) -> Result<Option<VitSpec>, CoreError> {
        if !self.arch.is_vit() {
            return Ok(None);
        }
        let preset = self.arch.vit_preset();
        let keys = [
            ("patch", self.patch),
            ("dim", self.dim),
            ("depth", self.depth),
            ("heads", self.heads),
            ("mlp_ratio", self.mlp_ratio),
            ("image_size", self.image_size),
        ];
        let mut values = [0usize; 6];
        for (i, (key, set)) in keys.into_iter().enumerate() {
            values[i] = set.or(preset.map(|p| p[i])).ok_or_else(|| {
                CoreError::config(
                    &format!("backbone.{key}"),
                    format!("arch `vit` needs {key} (or use a preset: vit-tiny, vit-b-16)"),
                )
            })?;
        }
        let [patch, dim, depth, heads, mlp_ratio, image_size] = values;
        let spec = VitSpec {
            image_size,
            patch,
            dim,
            depth,
            heads,
            mlp_dim: dim * mlp_ratio,
        };
        spec.check()
            .map_err(|(key, m)| CoreError::config(&format!("backbone.{key}"), m))?;
        Ok(Some(spec))
    }

    /// The stages the backbone this config builds has (see
    /// [`Backbone::layer_names`]), without building it.
    pub fn layer_names(&self) -> Result<Vec<String>, CoreError> {
        Ok(match self.vit_spec()? {
            Some(spec) => (0..spec.depth).map(vit::block_name).collect(),
            None => ResNet::LAYERS.iter().map(|l| l.to_string()).collect(),
        })
    }

    pub fn spec(&self) -> ResNetSpec {
        let imagenet_stem = self.arch != Arch::ResNet18Cifar;
        ResNetSpec {
            imagenet_stem,
            maxpool: imagenet_stem && self.maxpool.unwrap_or(true),
            block: self.arch.block(),
            layers: match self.arch {
                Arch::ResNet50 => [3, 4, 6, 3],
                _ => [2, 2, 2, 2],
            },
            width: self.width,
        }
    }

    /// A randomly initialised backbone of this shape (weights not applied).
    /// Call after [`BackboneConfig::validate`]: a ViT shape it rejects panics here.
    pub fn build(&self, rng: &mut ChaCha8Rng, device: &Device) -> Backbone {
        match self.vit_spec().expect("a validated backbone config") {
            Some(spec) => Backbone::Vit(Vit::new(spec, rng, device)),
            None => Backbone::ResNet(ResNet::new(self.spec(), rng, device)),
        }
    }

    pub fn validate(&self) -> Result<(), CoreError> {
        let bad = |key: &str, m: String| Err(CoreError::config(&format!("backbone.{key}"), m));
        if self.width == 0 {
            return bad("width", "must be >= 1".into());
        }
        self.vit_spec()?;
        if !self.arch.is_vit() {
            for (set, key) in [
                (self.patch.is_some(), "patch"),
                (self.dim.is_some(), "dim"),
                (self.depth.is_some(), "depth"),
                (self.heads.is_some(), "heads"),
                (self.mlp_ratio.is_some(), "mlp_ratio"),
                (self.image_size.is_some(), "image_size"),
            ] {
                if set {
                    return bad(
                        key,
                        format!(
                            "{key} shapes a ViT; arch `{}` is a ResNet",
                            self.arch.name()
                        ),
                    );
                }
            }
        } else if self.maxpool.is_some() {
            return bad("maxpool", "maxpool applies to ResNets, not ViTs".into());
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

/// A feature extractor: a ResNet or a ViT, `[batch, 3, h, w]` images to
/// `[batch, feature_dim]` features.
// One backbone per model: the size of the larger variant costs nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Module, Debug)]
pub enum Backbone {
    ResNet(ResNet),
    Vit(Vit),
}

impl Backbone {
    pub fn forward(&self, x: Tensor<4>) -> Tensor<2> {
        match self {
            Backbone::ResNet(r) => r.forward(x),
            Backbone::Vit(v) => v.forward(x),
        }
    }

    /// Every batch norm (a ViT has none: its LayerNorms keep no statistics).
    pub fn batch_norms_mut(&mut self) -> Vec<&mut BatchNorm> {
        match self {
            Backbone::ResNet(r) => r.batch_norms_mut(),
            Backbone::Vit(_) => Vec::new(),
        }
    }

    /// The stages activations can be read at (`pooled_activations`): a
    /// ResNet's stem and layers, a ViT's blocks.
    pub fn layer_names(&self) -> Vec<String> {
        match self {
            Backbone::ResNet(_) => ResNet::LAYERS.iter().map(|l| l.to_string()).collect(),
            Backbone::Vit(v) => v.layer_names(),
        }
    }

    pub fn as_resnet(&self) -> Option<&ResNet> {
        match self {
            Backbone::ResNet(r) => Some(r),
            Backbone::Vit(_) => None,
        }
    }

    pub fn as_resnet_mut(&mut self) -> Option<&mut ResNet> {
        match self {
            Backbone::ResNet(r) => Some(r),
            Backbone::Vit(_) => None,
        }
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

    #[test]
    fn vit_presets_and_their_overrides() {
        let tiny = BackboneConfig {
            arch: Arch::VitTiny,
            ..Default::default()
        };
        let spec = tiny.vit_spec().unwrap().unwrap();
        assert_eq!(
            (spec.patch, spec.dim, spec.depth, spec.heads),
            (4, 192, 6, 3)
        );
        assert_eq!(
            (spec.mlp_dim, spec.image_size, spec.tokens()),
            (768, 32, 65)
        );
        assert_eq!(tiny.feature_dim(), 192);
        let shallow = BackboneConfig {
            depth: Some(2),
            ..tiny.clone()
        };
        assert_eq!(shallow.vit_spec().unwrap().unwrap().depth, 2);
        let b16 = BackboneConfig {
            arch: "vit-b-16".parse().unwrap(),
            ..Default::default()
        };
        let spec = b16.vit_spec().unwrap().unwrap();
        assert_eq!(
            (spec.patch, spec.dim, spec.mlp_dim, spec.tokens()),
            (16, 768, 3072, 197)
        );
        // A ResNet has no ViT shape, and refuses ViT keys.
        assert_eq!(BackboneConfig::default().vit_spec().unwrap(), None);
        let resnet_with_patch = BackboneConfig {
            patch: Some(4),
            ..Default::default()
        };
        assert!(err(resnet_with_patch).contains("patch shapes a ViT"));
        // The unnamed `vit` needs every key.
        let bare = BackboneConfig {
            arch: Arch::Vit,
            patch: Some(4),
            ..Default::default()
        };
        assert!(err(bare).contains("needs dim"));
    }
}
