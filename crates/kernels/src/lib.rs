//! Kernels of our own where burn's are the limit, plugged in through burn's
//! backend-extension mechanism. Each one has a `Tensor`-level entry point
//! that falls back to burn's own operation on every other backend, so model
//! code calls it unconditionally.

#[cfg(feature = "flex")]
pub mod batch_norm;
#[cfg(feature = "flex")]
pub mod conv2d;
#[cfg(feature = "flex")]
pub mod epilogue;
#[cfg(feature = "flex")]
mod flex;
#[cfg(feature = "flex")]
mod gemm;
#[cfg(feature = "flex")]
mod layout;
pub mod similarity;
#[cfg(feature = "flex")]
pub mod transformer;
#[cfg(feature = "flex")]
mod winograd;

use burn::nn::conv::Conv2d;
use burn::nn::{BatchNorm, LayerNorm, Linear};
use burn::tensor::activation::{gelu as burn_gelu, relu, softmax as burn_softmax};
use burn::tensor::{Device, Tensor};

/// Whether tensors on `device` live on the flex backend (with or without autodiff).
pub fn is_flex(device: &Device) -> bool {
    #[cfg(feature = "flex")]
    {
        use burn::backend::DispatchDevice;
        // Called for every layer of every step: look through autodiff by
        // reference instead of cloning the device.
        let inner = match device.as_dispatch() {
            DispatchDevice::Autodiff(autodiff) => &**autodiff,
            other => other,
        };
        matches!(inner, DispatchDevice::Flex(_))
    }
    #[cfg(not(feature = "flex"))]
    {
        let _ = device;
        false
    }
}

/// Frees the buffers the kernels keep between calls (Winograd's
/// transforms and products), for a long-running process between pieces of
/// work of different sizes, e.g. grid cells. A no-op without `flex`.
pub fn release_buffers() {
    #[cfg(feature = "flex")]
    winograd::release_buffers();
}

/// `ln.forward(x)` for a LayerNorm with a bias and `epsilon` (burn's layer
/// keeps its own private): through [`transformer::TransformerOps`] on the
/// flex backend, the layer itself elsewhere.
pub fn layer_norm_forward<const D: usize>(ln: &LayerNorm, x: Tensor<D>, epsilon: f64) -> Tensor<D> {
    #[cfg(feature = "flex")]
    if let Some(beta) = &ln.beta
        && is_flex(&x.device())
    {
        use burn::backend::Dispatch;
        use transformer::TransformerOps;
        return Tensor::from_dispatch(<Dispatch as TransformerOps>::layer_norm_last(
            x.into_dispatch(),
            ln.gamma.val().into_dispatch(),
            beta.val().into_dispatch(),
            epsilon,
        ));
    }
    let _ = epsilon;
    ln.forward(x)
}

/// `x · w + b` over the last axis (`w` `[d_in, d_out]`, burn's layout),
/// then exact GELU if `gelu`: on the flex backend one product and one pass
/// for bias and activation each way ([`transformer::TransformerOps`]);
/// burn's `linear` (and `gelu`) elsewhere.
pub fn linear_bias<const D: usize>(
    x: Tensor<D>,
    w: Tensor<2>,
    b: Tensor<1>,
    gelu: bool,
) -> Tensor<D> {
    #[cfg(feature = "flex")]
    if is_flex(&x.device()) {
        use burn::backend::Dispatch;
        use transformer::TransformerOps;
        return Tensor::from_dispatch(<Dispatch as TransformerOps>::linear_fused(
            x.into_dispatch(),
            w.into_dispatch(),
            b.into_dispatch(),
            gelu,
        ));
    }
    let y = burn::tensor::module::linear(x, w, Some(b));
    if gelu { burn_gelu(y) } else { y }
}

/// `layer.forward(x)`, then exact GELU if `gelu`, through [`linear_bias`]
/// when the layer has a bias.
pub fn linear_forward<const D: usize>(layer: &Linear, x: Tensor<D>, gelu: bool) -> Tensor<D> {
    match &layer.bias {
        Some(b) => linear_bias(x, layer.weight.val(), b.val(), gelu),
        None if gelu => burn_gelu(layer.forward(x)),
        None => layer.forward(x),
    }
}

/// Multi-head self-attention from packed projections `qkv` `[B, T, 3·D]`
/// (PyTorch's `in_proj` output: queries, keys, values) to `[B, T, D]` with
/// the heads side by side, before the output projection. One operation
/// each way on the flex backend ([`transformer::TransformerOps`]); burn's
/// operations elsewhere.
pub fn self_attention(qkv: Tensor<3>, heads: usize) -> Tensor<3> {
    #[cfg(feature = "flex")]
    if is_flex(&qkv.device()) {
        use burn::backend::Dispatch;
        use transformer::TransformerOps;
        return Tensor::from_dispatch(<Dispatch as TransformerOps>::attention_packed(
            qkv.into_dispatch(),
            heads,
        ));
    }
    self_attention_composed(qkv, heads)
}

/// [`self_attention`] from burn's tensor operations.
pub fn self_attention_composed(qkv: Tensor<3>, heads: usize) -> Tensor<3> {
    let [batch, tokens, three_dim] = qkv.dims();
    let dim = three_dim / 3;
    let head_dim = dim / heads;
    // [batch, tokens, 3, heads, head_dim] -> three [batch, heads, tokens, head_dim]
    let qkv = qkv
        .reshape([batch, tokens, 3, heads, head_dim])
        .permute([2, 0, 3, 1, 4]);
    let part = |i: usize| {
        qkv.clone()
            .narrow(0, i, 1)
            .reshape([batch, heads, tokens, head_dim])
    };
    let (q, k, v) = (part(0), part(1), part(2));
    let scores = q
        .matmul(k.transpose())
        .mul_scalar(1.0 / (head_dim as f64).sqrt());
    let out = burn_softmax(scores, 3).matmul(v);
    out.swap_dims(1, 2).reshape([batch, tokens, dim])
}

/// Symmetric padding of a convolution our kernel handles, if it does.
#[cfg(feature = "flex")]
fn gemm_conv_padding(conv: &Conv2d) -> Option<[usize; 2]> {
    use burn::nn::PaddingConfig2d;
    if conv.bias.is_some() || conv.groups != 1 || conv.dilation != [1, 1] {
        return None;
    }
    match conv.padding {
        PaddingConfig2d::Valid => Some([0, 0]),
        PaddingConfig2d::Explicit(top, left, bottom, right) if top == bottom && left == right => {
            Some([top, left])
        }
        _ => None,
    }
}

/// `conv.forward(x)`, through [`conv2d::GemmConv2d`] on the flex backend.
pub fn conv2d_forward(conv: &Conv2d, x: Tensor<4>) -> Tensor<4> {
    #[cfg(feature = "flex")]
    if let Some(padding) = gemm_conv_padding(conv)
        && is_flex(&x.device())
    {
        return conv2d_with_weight(x, conv.weight.val(), conv.stride, padding);
    }
    conv.forward(x)
}

/// A convolution of `x` with a weight tensor built on the fly (a group
/// convolution's stacked filter bank), no bias, dilation 1, one group:
/// through [`conv2d::GemmConv2d`] on the flex backend, burn's `conv2d`
/// elsewhere. Gradients reach both `x` and `weight`.
pub fn conv2d_with_weight(
    x: Tensor<4>,
    weight: Tensor<4>,
    stride: [usize; 2],
    padding: [usize; 2],
) -> Tensor<4> {
    #[cfg(feature = "flex")]
    if is_flex(&x.device()) {
        use burn::backend::Dispatch;
        use conv2d::GemmConv2d;
        return Tensor::from_dispatch(<Dispatch as GemmConv2d>::gemm_conv2d(
            x.into_dispatch(),
            weight.into_dispatch(),
            stride,
            padding,
        ));
    }
    burn::tensor::module::conv2d(
        x,
        weight,
        None,
        burn::tensor::ops::ConvOptions::new(stride, padding, [1, 1], 1),
    )
}

/// `bn.forward(x)`. In training on the flex backend, through
/// [`batch_norm::FusedBatchNorm`], updating the running statistics exactly
/// as burn's layer does (momentum-weighted, biased batch variance).
pub fn batch_norm_forward(bn: &BatchNorm, x: Tensor<4>) -> Tensor<4> {
    batch_norm_then(bn, x, Epilogue::None)
}

/// `bn(x)` then the epilogue. In training on the flex backend, batch norm,
/// the shortcut and ReLU are one operation
/// ([`batch_norm::FusedBatchNorm::batch_norm_relu`], `batch_norm_add_relu`)
/// that keeps one activation-sized tensor less for backward (two with the
/// shortcut); the values are those of the operations apart, bit for bit.
fn batch_norm_then(bn: &BatchNorm, x: Tensor<4>, then: Epilogue) -> Tensor<4> {
    #[cfg(feature = "flex")]
    if x.device().is_autodiff() && bn.training.is_enabled() && is_flex(&x.device()) {
        use batch_norm::FusedBatchNorm;
        use burn::backend::Dispatch;
        let [_, channels, _, _] = x.dims();
        let stats: Tensor<2> = Tensor::from_dispatch(<Dispatch as FusedBatchNorm>::batch_stats(
            x.clone().into_dispatch(),
        ));
        let (x, s) = (x.into_dispatch(), stats.clone().into_dispatch());
        let (g, b) = (
            bn.gamma.val().into_dispatch(),
            bn.beta.val().into_dispatch(),
        );
        let y = Tensor::from_dispatch(match then {
            Epilogue::None => {
                <Dispatch as FusedBatchNorm>::batch_norm_apply(x, s, g, b, bn.epsilon)
            }
            Epilogue::Relu => <Dispatch as FusedBatchNorm>::batch_norm_relu(x, s, g, b, bn.epsilon),
            Epilogue::AddRelu(r) => <Dispatch as FusedBatchNorm>::batch_norm_add_relu(
                x,
                s,
                g,
                b,
                r.into_dispatch(),
                bn.epsilon,
            ),
        });
        let device = y.device();
        let mean = stats.clone().slice([0..1, 0..channels]).reshape([channels]);
        let var = stats.slice([1..2, 0..channels]).reshape([channels]);
        let m = bn.momentum;
        let running_mean = bn.running_mean.value_sync().to_device(&device);
        let running_var = bn.running_var.value_sync().to_device(&device);
        let running_mean = running_mean
            .mul_scalar(1.0 - m)
            .add(mean.detach().mul_scalar(m));
        let running_var = running_var
            .mul_scalar(1.0 - m)
            .add(var.detach().mul_scalar(m));
        bn.running_mean.update(running_mean.detach());
        bn.running_var.update(running_var.detach());
        return y;
    }
    let y = bn.forward(x);
    match then {
        Epilogue::None => y,
        Epilogue::Relu => relu(y),
        Epilogue::AddRelu(r) => relu(y + r),
    }
}

/// What follows a convolution and its batch norm in a ResNet. (Built once
/// per layer and moved straight in: the size of the shortcut's variant
/// costs nothing.)
#[allow(clippy::large_enum_variant)]
pub enum Epilogue {
    /// Nothing (a projection shortcut).
    None,
    /// ReLU.
    Relu,
    /// Add the block's shortcut, then ReLU.
    AddRelu(Tensor<4>),
}

/// `bn(conv(x))`, then the epilogue. In inference on the flex backend (no
/// autodiff: the running statistics apply), the batch norm is folded into
/// the convolution — weights scaled by γ/√(var + ε) per output channel, bias
/// β − mean·γ/√(var + ε) — and bias, shortcut and ReLU take one pass
/// ([`epilogue::ConvEpilogue`]). Results differ from the unfolded layers by
/// rounding only. In training on the flex backend, the convolution, then
/// batch norm, shortcut and ReLU as one operation (values bit for bit those
/// of the layers apart, one or two activations fewer kept for backward).
/// Everywhere else: the layers as they are.
pub fn conv_bn_forward(conv: &Conv2d, bn: &BatchNorm, x: Tensor<4>, then: Epilogue) -> Tensor<4> {
    #[cfg(feature = "flex")]
    if !x.device().is_autodiff()
        && is_flex(&x.device())
        && let Some(padding) = gemm_conv_padding(conv)
    {
        use burn::backend::Dispatch;
        use epilogue::ConvEpilogue;
        let device = x.device();
        let mean = bn.running_mean.value().to_device(&device);
        let var = bn.running_var.value().to_device(&device);
        let scale = bn.gamma.val() / var.add_scalar(bn.epsilon).sqrt();
        let bias = bn.beta.val() - mean * scale.clone();
        let [out_channels, ..] = conv.weight.dims();
        let weight = conv.weight.val() * scale.reshape([out_channels, 1, 1, 1]);
        let y = conv2d_with_weight(x, weight, conv.stride, padding).into_dispatch();
        let bias = bias.into_dispatch();
        return Tensor::from_dispatch(match then {
            Epilogue::None => <Dispatch as ConvEpilogue>::bias_act(y, bias, false),
            Epilogue::Relu => <Dispatch as ConvEpilogue>::bias_act(y, bias, true),
            Epilogue::AddRelu(r) => {
                <Dispatch as ConvEpilogue>::bias_residual_relu(y, bias, r.into_dispatch())
            }
        });
    }
    batch_norm_then(bn, conv2d_forward(conv, x), then)
}
