//! A vision transformer with torchvision's `VisionTransformer` structure and
//! parameter names (less the `encoder_layer_` prefix of its block list and
//! the indices of its MLP's `Sequential`, see [`torchvision_name`]), so that
//! torchvision checkpoints map onto it one to one:
//!
//! - a `patch`×`patch` stride-`patch` convolution (`conv_proj`) into `dim`
//!   channels, flattened to one token per patch;
//! - a learned class token in front, learned position embeddings added;
//! - `depth` pre-norm blocks: x + attention(ln_1(x)), then x + mlp(ln_2(x)),
//!   the MLP Linear → GELU (exact, erf) → Linear;
//! - a final LayerNorm; the features are the class token's, `[batch, dim]`.
//!
//! Every LayerNorm uses torchvision's eps, 1e-6. Attention is PyTorch's
//! `nn.MultiheadAttention` with packed input projections (`in_proj_weight`,
//! `[3·dim, dim]`, in PyTorch's layout) and an output projection. Dropout is
//! 0 (torchvision's default), so there is none.
//!
//! On the flex backend GELU, LayerNorm and the attention softmax run
//! through `reusebench-kernels` (one parallel pass each way); they agree
//! with burn's layers to rounding (the parity tests hold either way).

use burn::module::{Module, Param};
use burn::nn::conv::{Conv2d, Conv2dConfig};
use burn::nn::{Initializer, LayerNorm, LayerNormConfig, Linear, LinearConfig, PaddingConfig2d};
use burn::tensor::module::interpolate;
use burn::tensor::ops::{InterpolateMode, InterpolateOptions};
use burn::tensor::{Device, Tensor};
use rand_chacha::ChaCha8Rng;
use reusebench_kernels::{layer_norm_forward, linear_bias, linear_forward, self_attention};

use crate::init::{normal_param, uniform_fan_in, xavier_uniform};

/// torchvision's LayerNorm eps in `VisionTransformer`.
const LAYER_NORM_EPS: f64 = 1e-6;

/// The shape of a ViT.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VitSpec {
    pub image_size: usize,
    pub patch: usize,
    pub dim: usize,
    pub depth: usize,
    pub heads: usize,
    pub mlp_dim: usize,
}

impl VitSpec {
    /// Patches along one side.
    pub fn grid(&self) -> usize {
        self.image_size / self.patch
    }

    /// Tokens: one per patch and the class token.
    pub fn tokens(&self) -> usize {
        self.grid() * self.grid() + 1
    }

    /// What is wrong with this shape, if anything: the key at fault and why.
    pub fn check(&self) -> Result<(), (&'static str, String)> {
        if self.patch == 0 || !self.image_size.is_multiple_of(self.patch) {
            return Err((
                "patch",
                format!(
                    "image_size {} is not a multiple of patch {}",
                    self.image_size, self.patch
                ),
            ));
        }
        if self.heads == 0 || !self.dim.is_multiple_of(self.heads) {
            return Err((
                "heads",
                format!("dim {} is not a multiple of heads {}", self.dim, self.heads),
            ));
        }
        if self.depth == 0 {
            return Err(("depth", "must be at least 1".into()));
        }
        if self.mlp_dim == 0 {
            return Err(("mlp_ratio", "must be at least 1".into()));
        }
        Ok(())
    }
}

/// `nn.MultiheadAttention` as torchvision's encoder block holds it.
#[derive(Module, Debug)]
pub struct SelfAttention {
    /// `[3·dim, dim]`: the query, key and value projections stacked (PyTorch's layout).
    pub in_proj_weight: Param<Tensor<2>>,
    pub in_proj_bias: Param<Tensor<1>>,
    pub out_proj: Linear,
    heads: usize,
}

impl SelfAttention {
    fn new(dim: usize, heads: usize, rng: &mut ChaCha8Rng, device: &Device) -> Self {
        let mut out_proj = LinearConfig::new(dim, dim)
            .with_initializer(Initializer::Zeros)
            .init(device);
        out_proj.weight = uniform_fan_in(rng, [dim, dim], dim, device);
        Self {
            // PyTorch: xavier-uniform over the packed matrix, zero biases.
            in_proj_weight: xavier_uniform(rng, [3 * dim, dim], dim, 3 * dim, device),
            in_proj_bias: Param::from_tensor(Tensor::zeros([3 * dim], device)),
            out_proj,
            heads,
        }
    }

    /// `x`: `[batch, tokens, dim]`.
    pub fn forward(&self, x: Tensor<3>) -> Tensor<3> {
        // One [batch·tokens, dim] × [dim, 3·dim] product (the batch folded
        // into the rows), not a product per image. (Three products from the
        // weight's thirds measured slower.)
        let qkv = linear_bias(
            x,
            self.in_proj_weight.val().transpose(),
            self.in_proj_bias.val(),
            false,
        );
        let out = self_attention(qkv, self.heads);
        linear_forward(&self.out_proj, out, false)
    }
}

/// torchvision's `MLPBlock`: Linear (`mlp.0`) → GELU → Linear (`mlp.3`).
#[derive(Module, Debug)]
pub struct Mlp {
    pub fc1: Linear,
    pub fc2: Linear,
}

impl Mlp {
    fn new(dim: usize, hidden: usize, rng: &mut ChaCha8Rng, device: &Device) -> Self {
        let mut linear = |cin: usize, cout: usize| {
            let mut l = LinearConfig::new(cin, cout)
                .with_initializer(Initializer::Zeros)
                .init(device);
            // torchvision: xavier-uniform weights, normal(std 1e-6) biases.
            l.weight = xavier_uniform(rng, [cin, cout], cin, cout, device);
            l.bias = Some(normal_param(rng, [cout], 1e-6, device));
            l
        };
        let fc1 = linear(dim, hidden);
        let fc2 = linear(hidden, dim);
        Self { fc1, fc2 }
    }

    pub fn forward(&self, x: Tensor<3>) -> Tensor<3> {
        linear_forward(&self.fc2, linear_forward(&self.fc1, x, true), false)
    }
}

/// The name of block `i` (`block0`..): in RESQUE's `layer` and in the
/// parameter changes reported per layer.
pub fn block_name(i: usize) -> String {
    format!("block{i}")
}

/// torchvision's `EncoderBlock`.
#[derive(Module, Debug)]
pub struct EncoderBlock {
    pub ln_1: LayerNorm,
    pub self_attention: SelfAttention,
    pub ln_2: LayerNorm,
    pub mlp: Mlp,
}

impl EncoderBlock {
    pub fn forward(&self, x: Tensor<3>) -> Tensor<3> {
        let (y, mlp) = self.forward_parts(x);
        mlp + y
    }

    /// The block's residual stream after attention, and its MLP's raw
    /// output (the last linear layer's, before the residual sum): the
    /// block's output is their sum.
    fn forward_parts(&self, x: Tensor<3>) -> (Tensor<3>, Tensor<3>) {
        let y = self.self_attention.forward(norm(&self.ln_1, x.clone())) + x;
        let mlp = self.mlp.forward(norm(&self.ln_2, y.clone()));
        (y, mlp)
    }
}

/// torchvision's `Encoder`: position embeddings, blocks, final LayerNorm.
#[derive(Module, Debug)]
pub struct VitEncoder {
    /// `[1, tokens, dim]`, the class token's first.
    pub pos_embedding: Param<Tensor<3>>,
    pub layers: Vec<EncoderBlock>,
    pub ln: LayerNorm,
}

#[derive(Module, Debug)]
pub struct Vit {
    pub conv_proj: Conv2d,
    /// `[1, 1, dim]`.
    pub class_token: Param<Tensor<3>>,
    pub encoder: VitEncoder,
}

/// A LayerNorm of this model (all at [`LAYER_NORM_EPS`]) through the
/// kernels' one-pass LayerNorm, burn's layer off the flex backend.
fn norm(ln: &LayerNorm, x: Tensor<3>) -> Tensor<3> {
    layer_norm_forward(ln, x, LAYER_NORM_EPS)
}

fn layer_norm(dim: usize, device: &Device) -> LayerNorm {
    LayerNormConfig::new(dim)
        .with_epsilon(LAYER_NORM_EPS)
        .init(device)
}

impl Vit {
    /// Random weights drawn as torchvision initialises them (the patch
    /// convolution's fan-in normal, position embeddings at std 0.02, a zero
    /// class token), from `rng` alone.
    pub fn new(spec: VitSpec, rng: &mut ChaCha8Rng, device: &Device) -> Self {
        let (p, dim) = (spec.patch, spec.dim);
        let mut conv_proj = Conv2dConfig::new([3, dim], [p, p])
            .with_stride([p, p])
            .with_padding(PaddingConfig2d::Valid)
            .with_initializer(Initializer::Zeros)
            .init(device);
        let fan_in = 3 * p * p;
        conv_proj.weight = normal_param(rng, [dim, 3, p, p], (1.0 / fan_in as f32).sqrt(), device);
        let pos_embedding = normal_param(rng, [1, spec.tokens(), dim], 0.02, device);
        let layers = (0..spec.depth)
            .map(|_| EncoderBlock {
                ln_1: layer_norm(dim, device),
                self_attention: SelfAttention::new(dim, spec.heads, rng, device),
                ln_2: layer_norm(dim, device),
                mlp: Mlp::new(dim, spec.mlp_dim, rng, device),
            })
            .collect();
        Self {
            conv_proj,
            class_token: Param::from_tensor(Tensor::zeros([1, 1, dim], device)),
            encoder: VitEncoder {
                pos_embedding,
                layers,
                ln: layer_norm(dim, device),
            },
        }
    }

    pub fn feature_dim(&self) -> usize {
        self.class_token.dims()[2]
    }

    /// The side of a patch (the patch convolution's kernel).
    pub fn patch(&self) -> usize {
        self.conv_proj.weight.dims()[2]
    }

    /// Every token after the final LayerNorm, `[batch, tokens, dim]`.
    pub fn tokens(&self, x: Tensor<4>) -> Tensor<3> {
        let mut x = self.embed(x);
        for block in &self.encoder.layers {
            x = block.forward(x);
        }
        norm(&self.encoder.ln, x)
    }

    /// The tokens entering the first block (patches, class token,
    /// position embeddings).
    fn embed(&self, x: Tensor<4>) -> Tensor<3> {
        let patches = self.conv_proj.forward(x);
        let [batch, dim, h, w] = patches.dims();
        let patches = patches.reshape([batch, dim, h * w]).swap_dims(1, 2);
        let class = self.class_token.val().expand([batch, 1, dim]);
        let x = Tensor::cat(vec![class, patches], 1);
        let pos = self.encoder.pos_embedding.val();
        assert_eq!(
            pos.dims()[1],
            x.dims()[1],
            "position embeddings for {} tokens, the image gives {}: \
             interpolate them to the image size (Vit::with_image_size)",
            pos.dims()[1],
            x.dims()[1]
        );
        x + pos
    }

    /// The names of the blocks, `block0`.. (the names parameter changes are
    /// reported under), for reading activations with [`Vit::pooled_at`].
    pub fn layer_names(&self) -> Vec<String> {
        (0..self.encoder.layers.len()).map(block_name).collect()
    }

    /// Block `layer`'s activations averaged over tokens, `[batch, dim]`:
    /// its output, or with `pre_residual` its MLP's raw output (the
    /// block's last linear layer, before the residual sum: what a forward
    /// hook on that layer sees, the counterpart of a ResNet stage's last
    /// convolution). `None` for a name that is not a block.
    pub fn pooled_at(&self, x: Tensor<4>, layer: &str, pre_residual: bool) -> Option<Tensor<2>> {
        let last = self.layer_names().iter().position(|l| l == layer)?;
        let mut x = self.embed(x);
        for block in &self.encoder.layers[..last] {
            x = block.forward(x);
        }
        let (y, mlp) = self.encoder.layers[last].forward_parts(x);
        let out = if pre_residual { mlp } else { mlp + y };
        let [batch, _, dim] = out.dims();
        Some(out.mean_dim(1).reshape([batch, dim]))
    }

    /// The class token's features, `[batch, dim]`.
    pub fn forward(&self, x: Tensor<4>) -> Tensor<2> {
        let tokens = self.tokens(x);
        let [batch, _, dim] = tokens.dims();
        tokens.narrow(1, 0, 1).reshape([batch, dim])
    }

    /// This model for images of `image_size` (a multiple of `patch`): the
    /// patch position embeddings resampled to the new grid as torchvision's
    /// `interpolate_embeddings` does (bicubic, corners aligned), the class
    /// token's kept.
    pub fn with_image_size(mut self, image_size: usize) -> Self {
        let patch = self.patch();
        let pos = self.encoder.pos_embedding.val();
        let [_, tokens, dim] = pos.dims();
        let old = ((tokens - 1) as f64).sqrt() as usize;
        let new = image_size / patch;
        if old == new {
            return self;
        }
        let class = pos.clone().narrow(1, 0, 1);
        let grid = pos
            .narrow(1, 1, tokens - 1)
            .swap_dims(1, 2)
            .reshape([1, dim, old, old]);
        let resized = interpolate(
            grid,
            InterpolateOptions::new(InterpolateMode::Bicubic)
                .with_output_size([new, new])
                .with_align_corners(true),
        );
        let resized = resized.reshape([1, dim, new * new]).swap_dims(1, 2);
        self.encoder.pos_embedding = Param::from_tensor(Tensor::cat(vec![class, resized], 1));
        self
    }
}

/// This module's parameter path → torchvision's name (`layers.3.` →
/// `layers.encoder_layer_3.`, `mlp.fc1.` → `mlp.0.`, `mlp.fc2.` → `mlp.3.`);
/// LayerNorm's gamma and beta are mapped by burn's PyTorch adapter.
pub fn torchvision_name(path: &str) -> String {
    let mut out = String::with_capacity(path.len() + 16);
    let mut parts = path.split('.').peekable();
    let mut previous = "";
    while let Some(part) = parts.next() {
        let renamed = match (previous, part) {
            ("layers", i) if i.chars().all(|c| c.is_ascii_digit()) => format!("encoder_layer_{i}"),
            ("mlp", "fc1") => "0".to_string(),
            ("mlp", "fc2") => "3".to_string(),
            _ => part.to_string(),
        };
        out.push_str(&renamed);
        if parts.peek().is_some() {
            out.push('.');
        }
        previous = part;
    }
    out
}

/// torchvision's name → this module's parameter path (the inverse of [`torchvision_name`]).
pub fn harness_name(name: &str) -> String {
    let mut out = Vec::new();
    let mut previous = "";
    for part in name.split('.') {
        let renamed = match (previous, part) {
            ("layers", p) if p.starts_with("encoder_layer_") => {
                p["encoder_layer_".len()..].to_string()
            }
            ("mlp", "0") => "fc1".to_string(),
            ("mlp", "3") => "fc2".to_string(),
            _ => part.to_string(),
        };
        out.push(renamed);
        previous = part;
    }
    out.join(".")
}
