//! What the methods train: an encoder (features) with a linear head. The
//! encoder is a backbone, or a backbone wrapped by a module of a method's
//! own (side-tuning's [`SideTuned`]); the training loop knows models only
//! through [`TrainModel`].

use burn::module::{Module, Param};
use burn::nn::{Initializer, Linear, LinearConfig};
use burn::tensor::activation::sigmoid;
use burn::tensor::loss::cross_entropy_with_logits;
use burn::tensor::{Device, Tensor};
use rand_chacha::ChaCha8Rng;

use crate::backbone::{Backbone, BackboneConfig};
use crate::init::uniform_fan_in;

/// A model the shared training loop can train: it says how it computes
/// its outputs and its loss (as burn's `TrainStep` puts the step on the
/// model); penalties and bookkeeping come from the loop's hooks.
pub trait TrainModel: Module + Clone {
    /// Logits of a batch.
    fn forward(&self, images: Tensor<4>) -> Tensor<2>;
    /// The batch's loss against one-hot `targets`: cross-entropy.
    fn loss(&self, logits: Tensor<2>, targets: Tensor<2>) -> Tensor<1> {
        cross_entropy_with_logits(logits, targets)
    }
}

/// Side-tuning's side network: a small ResNet and a projection to the
/// base's feature size.
#[derive(Module, Debug)]
pub struct SideNet {
    pub net: Backbone,
    pub proj: Linear,
}

impl SideNet {
    /// A CIFAR ResNet-18 of `width` and a projection to `out` features,
    /// drawn from `rng` in that order.
    pub fn random(width: usize, out: usize, rng: &mut ChaCha8Rng, device: &Device) -> Self {
        let config = BackboneConfig {
            arch: crate::backbone::Arch::ResNet18Cifar,
            width,
            ..Default::default()
        };
        let net = config.build(rng, device);
        let proj = linear_head(rng, config.feature_dim(), out, device);
        Self { net, proj }
    }

    /// A side network that starts as the base itself (Zhang et al.'s
    /// initialisation): a copy of `base` whose parameters train and whose
    /// batch norm runs in training mode, and an identity projection of its
    /// `dim` features, so that side(x) = base(x) before the first step.
    pub fn copy_of(base: &Backbone, dim: usize, device: &Device) -> Self {
        // New parameter ids: the optimizer and the penalties key on them,
        // and the copy must not share them with the frozen base it came from
        // (an update of the copy would move the base too).
        let mut net = base.clone().unfreeze().map(&mut FreshIds);
        // Batch-norm running statistics are shared between a module and its
        // clones: the copy's, which train, get storage of their own.
        for bn in net.batch_norms_mut() {
            bn.running_mean = burn::module::RunningState::new(bn.running_mean.value_sync());
            bn.running_var = burn::module::RunningState::new(bn.running_var.value_sync());
        }
        let eye: Vec<f32> = (0..dim * dim)
            .map(|i| f32::from(u8::from(i / dim == i % dim)))
            .collect();
        let mut proj = LinearConfig::new(dim, dim)
            .with_initializer(Initializer::Zeros)
            .init(device);
        proj.weight = Param::from_tensor(
            Tensor::<2>::from_data(burn::tensor::TensorData::new(eye, [dim, dim]), device)
                .require_grad(),
        );
        Self { net, proj }
    }

    pub fn forward(&self, images: Tensor<4>) -> Tensor<2> {
        self.proj.forward(self.net.forward(images))
    }
}

/// Gives every float parameter a new id (a copy of a module that trains
/// beside its original).
struct FreshIds;

impl burn::module::ModuleMapper for FreshIds {
    fn map_float<const D: usize>(&mut self, param: Param<Tensor<D>>) -> Param<Tensor<D>> {
        let (_, tensor, mapper) = param.consume();
        Param::from_mapped_value(burn::module::ParamId::new(), tensor, mapper)
    }
}

/// Side-tuning (Zhang et al. 2020) as a module around the base: the base
/// stays frozen, and the features are α·base(x) + (1 − α)·side(x), with α
/// fixed (or scheduled by the method) or learned as the sigmoid of a
/// parameter.
#[derive(Module, Debug)]
pub struct SideTuned {
    pub base: Backbone,
    pub side: SideNet,
    /// Weight of the (frozen) base features in the blend, when not learned.
    pub alpha: f64,
    /// α = sigmoid(this), trained with the side network, when present.
    pub alpha_logit: Option<Param<Tensor<1>>>,
}

impl SideTuned {
    pub fn forward(&self, images: Tensor<4>) -> Tensor<2> {
        let base = self.base.forward(images.clone());
        self.blend(base, images)
    }

    /// The blend for base features computed elsewhere (a cache).
    pub fn blend(&self, base: Tensor<2>, images: Tensor<4>) -> Tensor<2> {
        let side = self.side.forward(images);
        match &self.alpha_logit {
            Some(logit) => {
                let a = sigmoid(logit.val()).reshape([1, 1]);
                base * a.clone() + side * (a.neg() + 1.0)
            }
            None => base * self.alpha + side * (1.0 - self.alpha),
        }
    }

    /// α as it stands (the learned one's current value).
    pub fn alpha_value(&self) -> f64 {
        match &self.alpha_logit {
            Some(logit) => f64::from(sigmoid(logit.val()).into_scalar::<f32>()),
            None => self.alpha,
        }
    }
}

/// What computes the features the head sees.
// One encoder per model: the size of the larger variant costs nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Module, Debug)]
pub enum Encoder {
    Backbone(Backbone),
    SideTuned(SideTuned),
}

impl Encoder {
    pub fn forward(&self, images: Tensor<4>) -> Tensor<2> {
        match self {
            Encoder::Backbone(b) => b.forward(images),
            Encoder::SideTuned(s) => s.forward(images),
        }
    }

    /// The pretrained network at the bottom: the backbone itself, or the
    /// frozen base a wrapper holds.
    pub fn base(&self) -> &Backbone {
        match self {
            Encoder::Backbone(b) => b,
            Encoder::SideTuned(s) => &s.base,
        }
    }
}

#[derive(Module, Debug)]
pub struct Classifier {
    pub encoder: Encoder,
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
pub fn build_backbone(config: &BackboneConfig, rng: &mut ChaCha8Rng, device: &Device) -> Backbone {
    config.build(rng, device)
}

impl Classifier {
    pub fn new(backbone: Backbone, head: Linear) -> Self {
        Self {
            encoder: Encoder::Backbone(backbone),
            head,
        }
    }

    /// The pretrained network under everything (see [`Encoder::base`]).
    pub fn backbone(&self) -> &Backbone {
        self.encoder.base()
    }

    pub fn backbone_mut(&mut self) -> &mut Backbone {
        match &mut self.encoder {
            Encoder::Backbone(b) => b,
            Encoder::SideTuned(s) => &mut s.base,
        }
    }

    /// Side-tuning's wrapper, when the encoder is one.
    pub fn side_tuned(&self) -> Option<&SideTuned> {
        match &self.encoder {
            Encoder::SideTuned(s) => Some(s),
            Encoder::Backbone(_) => None,
        }
    }

    pub fn side_tuned_mut(&mut self) -> Option<&mut SideTuned> {
        match &mut self.encoder {
            Encoder::SideTuned(s) => Some(s),
            Encoder::Backbone(_) => None,
        }
    }

    /// This classifier with its backbone frozen and wrapped by `side`
    /// (side-tuning); an encoder that is already wrapped keeps its base.
    pub fn with_side(self, side: SideNet, alpha: f64) -> Self {
        let base = match self.encoder {
            Encoder::Backbone(b) => b,
            Encoder::SideTuned(s) => s.base,
        };
        Self {
            encoder: Encoder::SideTuned(SideTuned {
                base: base.freeze(),
                side,
                alpha,
                alpha_logit: None,
            }),
            head: self.head,
        }
    }

    /// [`Classifier::with_side`] with α learned: sigmoid of a parameter
    /// initialised at 0 (α = 0.5 at the start).
    pub fn with_learned_side(self, side: SideNet, device: &Device) -> Self {
        let mut model = self.with_side(side, 0.5);
        if let Some(s) = model.side_tuned_mut() {
            s.alpha_logit = Some(Param::from_tensor(Tensor::zeros([1], device)));
        }
        model
    }

    /// The features the head sees.
    pub fn features(&self, images: Tensor<4>) -> Tensor<2> {
        self.encoder.forward(images)
    }

    pub fn forward(&self, images: Tensor<4>) -> Tensor<2> {
        self.head.forward(self.features(images))
    }
}

impl TrainModel for Classifier {
    fn forward(&self, images: Tensor<4>) -> Tensor<2> {
        Classifier::forward(self, images)
    }
}
