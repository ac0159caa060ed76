//! The canonicalization network: scores for every rotation in C_N, the
//! argmax as the input's orientation, and the input rotated back by its
//! inverse, with the straight-through estimator in training.

use burn::module::Module;
use burn::tensor::activation::softmax;
use burn::tensor::{Device, Tensor};
use rand_chacha::ChaCha8Rng;
use reusebench_core::bounded::{BelowOne, Positive, PositiveInt, Share};
use serde::{Deserialize, Serialize};

use crate::equivariant::{Dropout, EquivariantNet, FilterInit, Filters, Network, Pool};
use crate::group::{Border, Rotator, Sampler};
use crate::steerable::BasisKind;

/// The canonicalizer's settings (equiadapt's defaults).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CanonicalizerConfig {
    /// equiadapt's `custom` network or its `escnn` one's structure.
    pub network: Network,
    /// How its filters are first drawn (default: as the network's
    /// reference does, `uniform` for custom, `he` for escnn).
    pub init: Option<FilterInit>,
    /// Dropout after each ReLU in training (default: the network's
    /// reference, 0.5 for escnn, none for custom).
    pub dropout: Option<BelowOne>,
    /// Where the last maps are averaged into scores: `disc` (default) or
    /// `square` (equiadapt's).
    pub pool: Pool,
    /// The escnn network's steerable basis: `e2cnn` (default, its
    /// `R2Conv` defaults) or `wide` (the one before 2026-12-07).
    pub basis: BasisKind,
    /// Equivariant layers: the lifting layer and layers − 1 group layers.
    pub layers: PositiveInt,
    pub channels: PositiveInt,
    /// The lifting layer's kernel (odd).
    pub kernel: usize,
    /// The canonicalizer sees the centred crop of this share of each side...
    pub crop_ratio: Share,
    /// ...resized to this many pixels a side (default: the crop's size).
    pub input_size: Option<usize>,
    /// Temperature of the softmax the straight-through estimator
    /// differentiates.
    pub beta: Positive,
    /// The canonicalizer's learning rate as a multiple of the predictor's
    /// (equiadapt gives it its own; its CIFAR-10 ResNet config uses the
    /// same, 0.001 each): its gradients are scaled by this before the
    /// shared SGD step.
    pub lr_scale: Positive,
}

/// Every key a grid leaves out takes its value from here.
impl Default for CanonicalizerConfig {
    fn default() -> Self {
        Self {
            network: Network::Custom,
            init: None,
            dropout: None,
            pool: Pool::Disc,
            basis: BasisKind::E2cnn,
            layers: PositiveInt::of(3),
            channels: PositiveInt::of(32),
            kernel: 5,
            crop_ratio: Share::of(0.8),
            input_size: None,
            beta: Positive::of(1.0),
            lr_scale: Positive::of(1.0),
        }
    }
}

impl CanonicalizerConfig {
    /// The dropout probability in training, the default resolved.
    pub fn dropout_p(&self) -> f64 {
        self.dropout
            .map_or_else(|| self.network.reference_dropout(), BelowOne::get)
    }

    /// Pixels a side of the crop of an `image_size` image (equiadapt
    /// rounds up).
    pub fn crop_size(&self, image_size: usize) -> usize {
        ((image_size as f64 * self.crop_ratio.get()).ceil() as usize).clamp(1, image_size)
    }

    /// Pixels a side of what the network sees.
    pub fn network_input(&self, image_size: usize) -> usize {
        self.input_size
            .unwrap_or_else(|| self.crop_size(image_size))
    }
}

/// The canonicalization network with its input transform.
#[derive(Module, Debug)]
pub struct Canonicalizer {
    pub net: EquivariantNet,
    pub order: usize,
    pub beta: f64,
    pub lr_scale: f64,
    pub image_size: usize,
    pub crop_size: usize,
    pub input_size: usize,
    /// The centred crop and resize in front of the network (none when it
    /// would change nothing), and the group's turns of whole images:
    /// sampling tables built once, not per batch.
    #[module(skip)]
    input: Option<Sampler>,
    #[module(skip)]
    turns: Rotator,
}

impl Canonicalizer {
    pub fn new(
        config: &CanonicalizerConfig,
        order: usize,
        channels_in: usize,
        image_size: usize,
        rng: &mut ChaCha8Rng,
        device: &Device,
    ) -> Self {
        let (crop_size, input_size) = (
            config.crop_size(image_size),
            config.network_input(image_size),
        );
        let input = (crop_size != image_size || input_size != image_size).then(|| {
            let scale = crop_size as f64 / input_size as f64;
            Sampler::new(image_size, input_size, 0.0, scale, Border::Clamp)
        });
        Self {
            net: EquivariantNet::new(
                rng,
                config.network,
                Filters {
                    init: config
                        .init
                        .unwrap_or_else(|| config.network.reference_init()),
                    basis: config.basis,
                },
                channels_in,
                config.channels.get(),
                config.kernel,
                config.layers.get(),
                order,
                device,
            )
            .with_pool(config.pool),
            order,
            beta: config.beta.get(),
            lr_scale: config.lr_scale.get(),
            image_size,
            crop_size,
            input_size,
            input,
            turns: Rotator::new(order, image_size, Border::Clamp),
        }
    }

    /// What the network sees: the centred crop, resized (a no-op when
    /// neither changes the image). A centred crop and resize of a square
    /// commutes with quarter turns, so equivariance survives it.
    fn prepare(&self, x: Tensor<4>) -> Tensor<4> {
        match &self.input {
            Some(sampler) => sampler.apply(x),
            None => x,
        }
    }

    /// One score per group element, `[B, N]`. In training their gradient
    /// is scaled by `lr_scale` (the value is unchanged, bit for bit: the
    /// scaled part is a − a = 0), which is the canonicalizer's own
    /// learning rate under the shared SGD step.
    pub fn scores(&self, x: Tensor<4>) -> Tensor<2> {
        self.scores_with(x, None)
    }

    /// [`Canonicalizer::scores`] with `dropout` in the network (training).
    pub fn scores_with(&self, x: Tensor<4>, dropout: Option<&mut Dropout>) -> Tensor<2> {
        let a = self.net.forward_with(self.prepare(x), dropout);
        if self.lr_scale == 1.0 {
            return a;
        }
        let fixed = a.clone().detach();
        fixed.clone() + (a - fixed).mul_scalar(self.lr_scale)
    }

    /// The chosen element of each row of `scores`.
    pub fn choose(scores: Tensor<2>) -> Vec<usize> {
        scores
            .argmax(1)
            .into_data()
            .convert::<i64>()
            .try_into_vec::<i64>()
            .expect("argmax gives integers")
            .into_iter()
            .map(|k| k as usize)
            .collect()
    }

    /// `x` rotated back by the inverse of its chosen element. Written as
    /// Σ_g w_g · g⁻¹x with w = onehot(argmax) + (softmax(βa) −
    /// stopgrad(softmax(βa))): the value is exactly the chosen rotation
    /// (w is exactly one-hot), and the gradient reaches the scores through
    /// the softmax (the straight-through estimator). equiadapt
    /// differentiates through the rotation angle instead; the forward pass
    /// is the same.
    pub fn canonicalize(&self, x: Tensor<4>, scores: Tensor<2>) -> Tensor<4> {
        let [b, n] = scores.dims();
        let p = softmax(scores.clone().mul_scalar(self.beta), 1);
        let hard = scores.argmax(1).reshape([b]).one_hot::<2>(n).float();
        // hard + (p − p): the bracket is exactly 0, so w is exactly one-hot.
        let w = hard + (p.clone() - p.detach());
        self.turns.mix(x, w, true)
    }
}
