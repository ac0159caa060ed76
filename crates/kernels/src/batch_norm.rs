//! Training-mode batch normalisation on the flex (CPU) backend in three
//! passes over the activation (statistics, normalise; one more backward),
//! instead of burn's composition of tensor operations, which reads or
//! writes the activation about eight times forward and fifteen times
//! backward, with layout copies for every channel-wise reduction.
//!
//! Split in two operations so the layer can update its running statistics:
//! `batch_stats` (no gradient; the backward formula below accounts for the
//! statistics' dependence on the input) and `batch_norm_apply`, or
//! `batch_norm_relu` / `batch_norm_add_relu`, which also take the ReLU (and
//! a residual block's shortcut) in the same pass and keep only batch norm's
//! own inputs for backward: ReLU's mask is recomputed from them, where the
//! operations apart would also keep the pre-activation (and the sum).

use burn::backend::autodiff::NodeId;
use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::CheckpointStrategy;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops, OpsKind};
use burn::backend::flex::FlexTensor;
use burn::backend::ops::FloatTensorOps;
use burn::backend::tensor::FloatTensor;
use burn::backend::{Autodiff, Backend, Flex, TensorMetadata, backend_extension};
use rayon::prelude::*;

use crate::flex::{dense_f32, f32_tensor};

#[backend_extension(Flex, Autodiff)]
pub trait FusedBatchNorm: Backend {
    /// Per-channel mean and biased variance of `x` `[N, C, ...]`, as a
    /// `[2, C]` tensor (mean row, variance row). Never tracked.
    fn batch_stats(x: FloatTensor<Self>) -> FloatTensor<Self>;

    /// `(x − mean) / sqrt(var + ε) · γ + β` with `stats` from `batch_stats`
    /// of the same `x`; differentiable in `x`, `γ` and `β`, with the batch
    /// statistics' own dependence on `x` included.
    fn batch_norm_apply(
        x: FloatTensor<Self>,
        stats: FloatTensor<Self>,
        gamma: FloatTensor<Self>,
        beta: FloatTensor<Self>,
        epsilon: f64,
    ) -> FloatTensor<Self>;

    /// `relu(batch_norm_apply(..))` in one pass. Backward keeps what batch
    /// norm keeps (`x`, statistics, γ, β) and recomputes ReLU's mask from
    /// them, where the two operations apart would also keep the
    /// pre-activation for ReLU: one activation-sized tensor less per layer.
    fn batch_norm_relu(
        x: FloatTensor<Self>,
        stats: FloatTensor<Self>,
        gamma: FloatTensor<Self>,
        beta: FloatTensor<Self>,
        epsilon: f64,
    ) -> FloatTensor<Self>;

    /// `relu(batch_norm_apply(..) + residual)` in one pass (a residual
    /// block's end), keeping neither the sum nor the normalised values.
    fn batch_norm_add_relu(
        x: FloatTensor<Self>,
        stats: FloatTensor<Self>,
        gamma: FloatTensor<Self>,
        beta: FloatTensor<Self>,
        residual: FloatTensor<Self>,
        epsilon: f64,
    ) -> FloatTensor<Self>;
}

fn contiguous(t: FlexTensor) -> FlexTensor {
    dense_f32(t, "batch norm")
}

/// (images, channels, values per channel per image) of an `[N, C, ...]` tensor.
fn geometry(t: &FlexTensor) -> (usize, usize, usize) {
    let shape = t.layout().shape();
    assert!(shape.num_dims() >= 2, "batch norm: expected [N, C, ...]");
    let (n, c) = (shape[0], shape[1]);
    (n, c, shape.num_elements() / (n * c).max(1))
}

fn floats(t: &FlexTensor) -> &[f32] {
    t.storage::<f32>()
}

fn stats(x: FlexTensor) -> FlexTensor {
    let x = contiguous(x);
    let (n, c, hw) = geometry(&x);
    let data = floats(&x);
    let count = (n * hw) as f64;
    // Two passes per channel (mean, then centred squares) in f64, as
    // accurate as burn's centred formula.
    let per_channel: Vec<(f32, f32)> = (0..c)
        .into_par_iter()
        .map(|ch| {
            let planes = || (0..n).map(move |img| &data[(img * c + ch) * hw..][..hw]);
            let sum: f64 = planes()
                .map(|p| p.iter().map(|&v| v as f64).sum::<f64>())
                .sum();
            let mean = sum / count;
            let sq: f64 = planes()
                .map(|p| p.iter().map(|&v| (v as f64 - mean).powi(2)).sum::<f64>())
                .sum();
            (mean as f32, (sq / count) as f32)
        })
        .collect();
    let mut out: Vec<f32> = per_channel.iter().map(|s| s.0).collect();
    out.extend(per_channel.iter().map(|s| s.1));
    f32_tensor(out, vec![2, c])
}

/// Per-channel `1 / sqrt(var + ε)` from a `[2, C]` statistics buffer.
fn inv_std(stats: &[f32], epsilon: f64) -> Vec<f32> {
    let c = stats.len() / 2;
    (0..c)
        .map(|ch| (1.0 / (stats[c + ch] as f64 + epsilon).sqrt()) as f32)
        .collect()
}

/// Per-channel `scale = γ·inv_std`, `shift = β − mean·scale`.
fn affine(stats: &[f32], gamma: &[f32], beta: &[f32], epsilon: f64) -> (Vec<f32>, Vec<f32>) {
    let inv = inv_std(stats, epsilon);
    let scale: Vec<f32> = gamma.iter().zip(&inv).map(|(g, i)| g * i).collect();
    let shift = (0..gamma.len())
        .map(|ch| beta[ch] - stats[ch] * scale[ch])
        .collect();
    (scale, shift)
}

fn apply(
    x: FlexTensor,
    stats: FlexTensor,
    gamma: FlexTensor,
    beta: FlexTensor,
    epsilon: f64,
) -> FlexTensor {
    normalise(x, stats, gamma, beta, Then::Nothing, epsilon)
}

/// `max(x·scale + shift (+ residual), 0)`: [`apply`], then the residual,
/// then ReLU, in the same pass.
fn apply_relu(
    x: FlexTensor,
    stats: FlexTensor,
    gamma: FlexTensor,
    beta: FlexTensor,
    residual: Option<FlexTensor>,
    epsilon: f64,
) -> FlexTensor {
    let then = residual.map_or(Then::Relu, |r| Then::AddRelu(contiguous(r)));
    normalise(x, stats, gamma, beta, then, epsilon)
}

/// What follows the normalisation inside its pass.
enum Then {
    Nothing,
    Relu,
    AddRelu(FlexTensor),
}

/// `x·scale + shift` per plane, then `then`: the same roundings as the
/// operations apart (normalise, add, clamp), so the same values.
fn normalise(
    x: FlexTensor,
    stats: FlexTensor,
    gamma: FlexTensor,
    beta: FlexTensor,
    then: Then,
    epsilon: f64,
) -> FlexTensor {
    let (x, stats) = (contiguous(x), contiguous(stats));
    let (gamma, beta) = (contiguous(gamma), contiguous(beta));
    let (_, c, hw) = geometry(&x);
    let (scale, shift) = affine(floats(&stats), floats(&gamma), floats(&beta), epsilon);
    let data = floats(&x);
    if let Then::AddRelu(r) = &then {
        assert_eq!(
            r.layout().shape(),
            x.layout().shape(),
            "batch norm: residual shape"
        );
    }
    let mut y = vec![0.0f32; data.len()];
    y.par_chunks_mut(hw)
        .zip(data.par_chunks(hw))
        .enumerate()
        .for_each(|(plane, (out, src))| {
            let ch = plane % c;
            let (a, b) = (scale[ch], shift[ch]);
            match &then {
                Then::Nothing => {
                    for (o, &v) in out.iter_mut().zip(src) {
                        *o = v * a + b;
                    }
                }
                Then::Relu => {
                    for (o, &v) in out.iter_mut().zip(src) {
                        *o = (v * a + b).max(0.0);
                    }
                }
                Then::AddRelu(r) => {
                    let rp = &floats(r)[plane * hw..][..hw];
                    for ((o, &v), &rv) in out.iter_mut().zip(src).zip(rp) {
                        *o = (v * a + b + rv).max(0.0);
                    }
                }
            }
        });
    f32_tensor(y, x.layout().shape().to_vec())
}

/// `dy` where the pre-activation `x·scale + shift (+ residual)` is positive,
/// 0 elsewhere: ReLU's backward, its mask recomputed (bit for bit the
/// forward's values, so the same mask).
fn relu_mask(
    dy: &FlexTensor,
    (x, stats, gamma, beta): (&FlexTensor, &FlexTensor, &FlexTensor, &FlexTensor),
    residual: Option<&FlexTensor>,
    epsilon: f64,
) -> FlexTensor {
    let (_, c, hw) = geometry(x);
    let (scale, shift) = affine(floats(stats), floats(gamma), floats(beta), epsilon);
    let (xs, d) = (floats(x), floats(dy));
    let r = residual.map(floats);
    let mut dz = vec![0.0f32; xs.len()];
    dz.par_chunks_mut(hw).enumerate().for_each(|(plane, out)| {
        let ch = plane % c;
        let (a, b) = (scale[ch], shift[ch]);
        let at = plane * hw;
        let (xp, dp) = (&xs[at..at + hw], &d[at..at + hw]);
        match r {
            Some(r) => {
                let rp = &r[at..at + hw];
                for (((o, &xv), &dv), &rv) in out.iter_mut().zip(xp).zip(dp).zip(rp) {
                    *o = if xv * a + b + rv > 0.0 { dv } else { 0.0 };
                }
            }
            None => {
                for ((o, &xv), &dv) in out.iter_mut().zip(xp).zip(dp) {
                    *o = if xv * a + b > 0.0 { dv } else { 0.0 };
                }
            }
        }
    });
    f32_tensor(dz, x.layout().shape().to_vec())
}

#[derive(Debug)]
struct BatchNormBackward {
    epsilon: f64,
}

/// `batch_norm_apply`'s backward: [`gradients`].
impl Backward<Flex, 3> for BatchNormBackward {
    /// x, stats, γ.
    type State = (FlexTensor, FlexTensor, FlexTensor);

    fn backward(
        self,
        ops: Ops<Self::State, 3>,
        grads: &mut Gradients,
        _checkpointer: &mut Checkpointer,
    ) {
        let nodes = ops.parents.map(|p| p.map(|n| n.id));
        let dy = contiguous(grads.consume::<Flex>(&ops.node));
        let (x, stats, gamma) = ops.state;
        gradients(&x, &stats, &gamma, &dy, self.epsilon, nodes, grads);
    }
}

/// [`FusedBatchNorm::batch_norm_relu`] (N = 3: x, γ, β) and
/// [`FusedBatchNorm::batch_norm_add_relu`] (N = 4: and the residual).
#[derive(Debug)]
struct BatchNormReluBackward {
    epsilon: f64,
}

impl<const N: usize> Backward<Flex, N> for BatchNormReluBackward {
    /// The residual for N = 4 only.
    type State = ReluState;

    fn backward(
        self,
        ops: Ops<Self::State, N>,
        grads: &mut Gradients,
        _checkpointer: &mut Checkpointer,
    ) {
        let nodes = ops.parents.map(|p| p.map(|n| n.id));
        let dy = contiguous(grads.consume::<Flex>(&ops.node));
        let (x, stats, gamma, beta, residual) = ops.state;
        let dz = relu_mask(
            &dy,
            (&x, &stats, &gamma, &beta),
            residual.as_ref(),
            self.epsilon,
        );
        drop(dy);
        if let Some(Some(node)) = nodes.get(3) {
            grads.register::<Flex>(*node, dz.clone());
        }
        let bn_nodes = [nodes[0], nodes[1], nodes[2]];
        gradients(&x, &stats, &gamma, &dz, self.epsilon, bn_nodes, grads);
    }
}

/// Gradients for `x`, `γ`, `β` (the nodes, where tracked) from the
/// gradient `dy` of the normalised output. With x̂ = (x − mean)·inv_std and
/// M values per channel: dβ = Σ dy, dγ = Σ dy·x̂, dx = γ·inv_std·(dy −
/// dβ/M − x̂·dγ/M).
fn gradients(
    x: &FlexTensor,
    stats: &FlexTensor,
    gamma: &FlexTensor,
    dy: &FlexTensor,
    epsilon: f64,
    [node_x, node_gamma, node_beta]: [Option<NodeId>; 3],
    grads: &mut Gradients,
) {
    let (n, c, hw) = geometry(x);
    let count = (n * hw) as f64;
    let (xs, st, g, d) = (floats(x), floats(stats), floats(gamma), floats(dy));
    let inv_std = inv_std(st, epsilon);
    // Pass 1: per-channel Σ dy and Σ dy·x̂.
    let sums: Vec<(f64, f64)> = (0..c)
        .into_par_iter()
        .map(|ch| {
            let (mean, inv) = (st[ch], inv_std[ch]);
            (0..n).fold((0.0f64, 0.0f64), |(s, sx), img| {
                let at = (img * c + ch) * hw;
                let (xp, dp) = (&xs[at..at + hw], &d[at..at + hw]);
                let (ps, psx) = xp
                    .iter()
                    .zip(dp)
                    .fold((0.0f32, 0.0f32), |(a, b), (&xv, &dv)| {
                        (a + dv, b + dv * (xv - mean) * inv)
                    });
                (s + ps as f64, sx + psx as f64)
            })
        })
        .collect();
    if let Some(node) = node_x {
        // Pass 2: dx.
        let mut dx = vec![0.0f32; xs.len()];
        dx.par_chunks_mut(hw).enumerate().for_each(|(plane, out)| {
            let ch = plane % c;
            let (mean, inv) = (st[ch], inv_std[ch]);
            let k = g[ch] * inv;
            let mean_dy = (sums[ch].0 / count) as f32;
            let mean_dy_xhat = (sums[ch].1 / count) as f32;
            let at = plane * hw;
            for ((o, &xv), &dv) in out.iter_mut().zip(&xs[at..at + hw]).zip(&d[at..at + hw]) {
                *o = k * (dv - mean_dy - (xv - mean) * inv * mean_dy_xhat);
            }
        });
        grads.register::<Flex>(node, f32_tensor(dx, x.layout().shape().to_vec()));
    }
    if let Some(node) = node_gamma {
        let dg = sums.iter().map(|s| s.1 as f32).collect();
        grads.register::<Flex>(node, f32_tensor(dg, vec![c]));
    }
    if let Some(node) = node_beta {
        let db = sums.iter().map(|s| s.0 as f32).collect();
        grads.register::<Flex>(node, f32_tensor(db, vec![c]));
    }
}

impl FusedBatchNorm for Flex {
    fn batch_stats(x: FloatTensor<Self>) -> FloatTensor<Self> {
        stats(x)
    }

    fn batch_norm_apply(
        x: FloatTensor<Self>,
        stats: FloatTensor<Self>,
        gamma: FloatTensor<Self>,
        beta: FloatTensor<Self>,
        epsilon: f64,
    ) -> FloatTensor<Self> {
        apply(x, stats, gamma, beta, epsilon)
    }

    fn batch_norm_relu(
        x: FloatTensor<Self>,
        stats: FloatTensor<Self>,
        gamma: FloatTensor<Self>,
        beta: FloatTensor<Self>,
        epsilon: f64,
    ) -> FloatTensor<Self> {
        apply_relu(x, stats, gamma, beta, None, epsilon)
    }

    fn batch_norm_add_relu(
        x: FloatTensor<Self>,
        stats: FloatTensor<Self>,
        gamma: FloatTensor<Self>,
        beta: FloatTensor<Self>,
        residual: FloatTensor<Self>,
        epsilon: f64,
    ) -> FloatTensor<Self> {
        apply_relu(x, stats, gamma, beta, Some(residual), epsilon)
    }
}

impl<C: CheckpointStrategy> FusedBatchNorm for Autodiff<Flex, C> {
    fn batch_stats(x: FloatTensor<Self>) -> FloatTensor<Self> {
        // A new leaf: the statistics carry no gradient of their own.
        let device = x.device();
        Self::float_from_data(stats(x.into_primitive()).into_data(), &device)
    }

    fn batch_norm_apply(
        x: FloatTensor<Self>,
        stats: FloatTensor<Self>,
        gamma: FloatTensor<Self>,
        beta: FloatTensor<Self>,
        epsilon: f64,
    ) -> FloatTensor<Self> {
        let backward = BatchNormBackward { epsilon };
        match backward
            .prepare::<C>([x.node(), gamma.node(), beta.node()])
            .compute_bound()
            .stateful()
        {
            OpsKind::Tracked(prep) => {
                let xp = contiguous(x.primitive().clone());
                let sp = contiguous(stats.into_primitive());
                let gp = contiguous(gamma.primitive().clone());
                let y = apply(
                    xp.clone(),
                    sp.clone(),
                    gp.clone(),
                    beta.into_primitive(),
                    epsilon,
                );
                prep.finish((xp, sp, gp), y)
            }
            OpsKind::UnTracked(prep) => prep.finish(apply(
                x.into_primitive(),
                stats.into_primitive(),
                gamma.into_primitive(),
                beta.into_primitive(),
                epsilon,
            )),
        }
    }

    fn batch_norm_relu(
        x: FloatTensor<Self>,
        stats: FloatTensor<Self>,
        gamma: FloatTensor<Self>,
        beta: FloatTensor<Self>,
        epsilon: f64,
    ) -> FloatTensor<Self> {
        let kind = BatchNormReluBackward { epsilon }
            .prepare::<C>([x.node(), gamma.node(), beta.node()])
            .compute_bound()
            .stateful();
        let inputs = [&x, &stats, &gamma, &beta].map(|t| t.primitive().clone());
        relu_op(kind, inputs, None, epsilon)
    }

    fn batch_norm_add_relu(
        x: FloatTensor<Self>,
        stats: FloatTensor<Self>,
        gamma: FloatTensor<Self>,
        beta: FloatTensor<Self>,
        residual: FloatTensor<Self>,
        epsilon: f64,
    ) -> FloatTensor<Self> {
        let kind = BatchNormReluBackward { epsilon }
            .prepare::<C>([x.node(), gamma.node(), beta.node(), residual.node()])
            .compute_bound()
            .stateful();
        let inputs = [&x, &stats, &gamma, &beta].map(|t| t.primitive().clone());
        relu_op(kind, inputs, Some(residual.primitive().clone()), epsilon)
    }
}

/// What [`BatchNormReluBackward`] keeps: x, stats, γ, β, the residual.
type ReluState = (
    FlexTensor,
    FlexTensor,
    FlexTensor,
    FlexTensor,
    Option<FlexTensor>,
);

/// [`apply_relu`] as the autodiff operation `kind` (N = 3 tracked inputs,
/// or 4 with the residual), keeping its inputs where it is tracked.
fn relu_op<C: CheckpointStrategy, const N: usize>(
    kind: OpsKind<BatchNormReluBackward, Flex, ReluState, C, N>,
    inputs: [FlexTensor; 4],
    residual: Option<FlexTensor>,
    epsilon: f64,
) -> FloatTensor<Autodiff<Flex, C>> {
    let [x, stats, gamma, beta] = inputs.map(contiguous);
    let residual = residual.map(contiguous);
    match kind {
        OpsKind::Tracked(prep) => {
            let y = apply_relu(
                x.clone(),
                stats.clone(),
                gamma.clone(),
                beta.clone(),
                residual.clone(),
                epsilon,
            );
            prep.finish((x, stats, gamma, beta, residual), y)
        }
        OpsKind::UnTracked(prep) => {
            prep.finish(apply_relu(x, stats, gamma, beta, residual, epsilon))
        }
    }
}
