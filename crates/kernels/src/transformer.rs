//! The element-wise and row-wise layers of a transformer block on the flex
//! (CPU) backend, forward and backward, each in one parallel pass over its
//! input: exact (erf) GELU, LayerNorm over the last axis, and a scaled
//! softmax over the last axis.
//!
//! burn's autodiff builds LayerNorm and softmax from about ten tracked
//! operations each (a pass over the activation apiece, forward and
//! backward), and its flex element-wise operations, GELU included, run on
//! one thread with a scalar `erf`. In a vit-tiny train step those passes
//! took more time than the matrix products.
//!
//! Reductions over rows (dγ, dβ) add fixed blocks of rows in a fixed order,
//! so results do not depend on the number of threads.

use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::CheckpointStrategy;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops, OpsKind};
use burn::backend::flex::FlexTensor;
use burn::backend::tensor::FloatTensor;
use burn::backend::{Autodiff, Backend, Flex, backend_extension};
use rayon::prelude::*;

use crate::flex::{dense_f32, f32_tensor};

#[backend_extension(Flex, Autodiff)]
pub trait TransformerOps: Backend {
    /// `x·Φ(x)`, Φ the standard normal CDF (PyTorch's default GELU).
    fn gelu_exact(x: FloatTensor<Self>) -> FloatTensor<Self>;

    /// `(x − mean) / sqrt(var + ε) · γ + β` over the last axis (biased
    /// variance); differentiable in `x`, `γ` and `β`.
    fn layer_norm_last(
        x: FloatTensor<Self>,
        gamma: FloatTensor<Self>,
        beta: FloatTensor<Self>,
        epsilon: f64,
    ) -> FloatTensor<Self>;

    /// `softmax(scale · x)` over the last axis.
    fn softmax_last(x: FloatTensor<Self>, scale: f64) -> FloatTensor<Self>;
}

/// Rows per parallel task: small enough to balance two to sixteen threads
/// on a ViT's `[batch·tokens, dim]` activations, large enough that a task
/// outweighs its scheduling.
const ROWS_PER_TASK: usize = 32;

/// erf for f32 as Eigen and XLA compute it: a rational function in x over
/// [−4, 4] (erf is ±1 in f32 beyond), branch-free so loops vectorise.
/// Within 5e-7 of the true value (a few ulp near ±1).
#[inline(always)]
pub(crate) fn erf(x: f32) -> f32 {
    let x = x.clamp(-4.0, 4.0);
    let x2 = x * x;
    let mut p = -2.726_142_3e-10_f32;
    p = p * x2 + 2.770_681_4e-8;
    p = p * x2 - 2.101_024e-6;
    p = p * x2 - 5.692_506_4e-5;
    p = p * x2 - 7.349_906_3e-4;
    p = p * x2 - 2.954_600_1e-3;
    p = p * x2 - 1.609_603_3e-2;
    let mut q = -1.456_607_2e-5_f32;
    q = q * x2 - 2.133_740_6e-4;
    q = q * x2 - 1.682_827e-3;
    q = q * x2 - 7.373_329_3e-3;
    q = q * x2 - 1.426_473_9e-2;
    x * p / q
}

/// e^x for x ≤ 0 (clamped at −87, where e^x is still a normal f32):
/// 2^n · e^r with |r| ≤ ln2/2 by a degree-7 Taylor polynomial, the power
/// of two written into the exponent bits. Branch-free; within 2 ulp.
#[inline(always)]
pub(crate) fn exp_nonpositive(x: f32) -> f32 {
    const ROUND: f32 = 12_582_912.0; // 1.5·2^23: adding it rounds to an integer
    let x = x.clamp(-87.0, 0.0);
    let t = x * std::f32::consts::LOG2_E + ROUND;
    let n = t - ROUND;
    let r = x - n * 0.693_145_75 - n * 1.428_606_8e-6;
    let mut p = 1.0 / 5040.0_f32;
    p = p * r + 1.0 / 720.0;
    p = p * r + 1.0 / 120.0;
    p = p * r + 1.0 / 24.0;
    p = p * r + 1.0 / 6.0;
    p = p * r + 0.5;
    p = p * r + 1.0;
    p = p * r + 1.0;
    let scale = f32::from_bits(((n as i32 + 127) as u32) << 23);
    p * scale
}

const FRAC_1_SQRT_2: f32 = std::f32::consts::FRAC_1_SQRT_2;
/// 1/sqrt(2π).
const INV_SQRT_2PI: f32 = 0.398_942_3;

fn gelu_forward(x: FlexTensor) -> FlexTensor {
    let x = dense_f32(x, "gelu");
    let shape = x.layout().shape().to_vec();
    let xs = x.storage::<f32>();
    let mut y = vec![0.0f32; xs.len()];
    y.par_chunks_mut(1 << 14)
        .zip(xs.par_chunks(1 << 14))
        .for_each(|(o, i)| {
            for (o, &v) in o.iter_mut().zip(i) {
                *o = 0.5 * v * (1.0 + erf(v * FRAC_1_SQRT_2));
            }
        });
    f32_tensor(y, shape)
}

/// d/dx x·Φ(x) = Φ(x) + x·φ(x).
fn gelu_backward(x: &FlexTensor, dy: FlexTensor) -> FlexTensor {
    let dy = dense_f32(dy, "gelu backward");
    let (xs, ds) = (x.storage::<f32>(), dy.storage::<f32>());
    let mut dx = vec![0.0f32; xs.len()];
    dx.par_chunks_mut(1 << 14)
        .zip(xs.par_chunks(1 << 14).zip(ds.par_chunks(1 << 14)))
        .for_each(|(o, (xv, dv))| {
            for ((o, &v), &g) in o.iter_mut().zip(xv).zip(dv) {
                let cdf = 0.5 * (1.0 + erf(v * FRAC_1_SQRT_2));
                let pdf = INV_SQRT_2PI * exp_nonpositive(-0.5 * v * v);
                *o = g * (cdf + v * pdf);
            }
        });
    f32_tensor(dx, x.layout().shape().to_vec())
}

fn last_dim(t: &FlexTensor) -> usize {
    *t.layout()
        .shape()
        .last()
        .expect("a row-wise operation needs at least one axis")
}

/// The normalised rows x̂ (before γ, β), `1/sqrt(var + ε)` per row, and the
/// output.
fn layer_norm_forward(
    x: FlexTensor,
    gamma: &[f32],
    beta: &[f32],
    epsilon: f64,
) -> (Vec<f32>, Vec<f32>, FlexTensor) {
    let x = dense_f32(x, "layer norm");
    let shape = x.layout().shape().to_vec();
    let d = last_dim(&x);
    assert_eq!(
        gamma.len(),
        d,
        "layer norm: γ has {} values for rows of {d}",
        gamma.len()
    );
    let xs = x.storage::<f32>();
    let rows = xs.len() / d.max(1);
    let mut xhat = vec![0.0f32; xs.len()];
    let mut rstd = vec![0.0f32; rows];
    let mut y = vec![0.0f32; xs.len()];
    let block = ROWS_PER_TASK * d;
    xhat.par_chunks_mut(block)
        .zip(rstd.par_chunks_mut(ROWS_PER_TASK))
        .zip(y.par_chunks_mut(block).zip(xs.par_chunks(block)))
        .for_each(|((xh, rs), (out, src))| {
            for (((xh, r), out), src) in xh
                .chunks_mut(d)
                .zip(rs.iter_mut())
                .zip(out.chunks_mut(d))
                .zip(src.chunks(d))
            {
                // Centred two-pass variance, as accurate as burn's.
                let mean = src.iter().sum::<f32>() / d as f32;
                let var = src.iter().map(|&v| (v - mean) * (v - mean)).sum::<f32>() / d as f32;
                let inv = (1.0 / (var as f64 + epsilon).sqrt()) as f32;
                *r = inv;
                for ((((h, o), &v), &g), &b) in xh
                    .iter_mut()
                    .zip(out.iter_mut())
                    .zip(src)
                    .zip(gamma)
                    .zip(beta)
                {
                    *h = (v - mean) * inv;
                    *o = *h * g + b;
                }
            }
        });
    (xhat, rstd, f32_tensor(y, shape))
}

fn softmax_forward(x: FlexTensor, scale: f64) -> FlexTensor {
    let x = dense_f32(x, "softmax");
    let shape = x.layout().shape().to_vec();
    let d = last_dim(&x);
    let xs = x.storage::<f32>();
    let scale = scale as f32;
    let mut y = vec![0.0f32; xs.len()];
    let block = ROWS_PER_TASK * d;
    y.par_chunks_mut(block)
        .zip(xs.par_chunks(block))
        .for_each(|(out, src)| {
            for (o, s) in out.chunks_mut(d).zip(src.chunks(d)) {
                let max = s.iter().fold(f32::NEG_INFINITY, |m, &v| m.max(v * scale));
                let mut sum = 0.0f32;
                for (o, &v) in o.iter_mut().zip(s) {
                    *o = exp_nonpositive(v * scale - max);
                    sum += *o;
                }
                let inv = 1.0 / sum;
                o.iter_mut().for_each(|v| *v *= inv);
            }
        });
    f32_tensor(y, shape)
}

impl TransformerOps for Flex {
    fn gelu_exact(x: FloatTensor<Self>) -> FloatTensor<Self> {
        gelu_forward(x)
    }

    fn layer_norm_last(
        x: FloatTensor<Self>,
        gamma: FloatTensor<Self>,
        beta: FloatTensor<Self>,
        epsilon: f64,
    ) -> FloatTensor<Self> {
        let (gamma, beta) = (
            dense_f32(gamma, "layer norm"),
            dense_f32(beta, "layer norm"),
        );
        layer_norm_forward(x, gamma.storage(), beta.storage(), epsilon).2
    }

    fn softmax_last(x: FloatTensor<Self>, scale: f64) -> FloatTensor<Self> {
        softmax_forward(x, scale)
    }
}

#[derive(Debug)]
struct GeluBackward;

impl Backward<Flex, 1> for GeluBackward {
    /// The input.
    type State = FlexTensor;

    fn backward(self, ops: Ops<Self::State, 1>, grads: &mut Gradients, _: &mut Checkpointer) {
        let [node] = ops.parents;
        let dy = grads.consume::<Flex>(&ops.node);
        if let Some(node) = node {
            grads.register::<Flex>(node.id, gelu_backward(&ops.state, dy));
        }
    }
}

#[derive(Debug)]
struct LayerNormBackward;

/// With x̂ the normalised row, g = γ·dy and d values per row:
/// dx = rstd·(g − mean(g) − x̂·mean(g·x̂)), dγ = Σ_rows dy·x̂, dβ = Σ_rows dy.
impl Backward<Flex, 3> for LayerNormBackward {
    /// x̂, rstd per row, γ, the input's shape.
    type State = (Vec<f32>, Vec<f32>, FlexTensor, Vec<usize>);

    fn backward(self, ops: Ops<Self::State, 3>, grads: &mut Gradients, _: &mut Checkpointer) {
        let [node_x, node_gamma, node_beta] = ops.parents;
        let dy = dense_f32(grads.consume::<Flex>(&ops.node), "layer norm backward");
        let (xhat, rstd, gamma, shape) = ops.state;
        let d = *shape.last().expect("layer norm: an axis");
        let (g, ds) = (gamma.storage::<f32>(), dy.storage::<f32>());
        let block = ROWS_PER_TASK * d;
        if let Some(node) = node_x {
            let mut dx = vec![0.0f32; xhat.len()];
            dx.par_chunks_mut(block)
                .zip(xhat.par_chunks(block).zip(ds.par_chunks(block)))
                .zip(rstd.par_chunks(ROWS_PER_TASK))
                .for_each(|((out, (xh, dv)), rs)| {
                    for (((o, xh), dv), &r) in out
                        .chunks_mut(d)
                        .zip(xh.chunks(d))
                        .zip(dv.chunks(d))
                        .zip(rs)
                    {
                        let (mut mean_g, mut mean_gx) = (0.0f32, 0.0f32);
                        for ((&h, &dy), &gm) in xh.iter().zip(dv).zip(g) {
                            mean_g += gm * dy;
                            mean_gx += gm * dy * h;
                        }
                        mean_g /= d as f32;
                        mean_gx /= d as f32;
                        for (((o, &h), &dy), &gm) in o.iter_mut().zip(xh).zip(dv).zip(g) {
                            *o = r * (gm * dy - mean_g - h * mean_gx);
                        }
                    }
                });
            grads.register::<Flex>(node.id, f32_tensor(dx, shape.clone()));
        }
        if node_gamma.is_some() || node_beta.is_some() {
            // Per block of rows in parallel, then the blocks in order.
            let partial: Vec<(Vec<f32>, Vec<f32>)> = xhat
                .par_chunks(block)
                .zip(ds.par_chunks(block))
                .map(|(xh, dv)| {
                    let (mut dg, mut db) = (vec![0.0f32; d], vec![0.0f32; d]);
                    for (xh, dv) in xh.chunks(d).zip(dv.chunks(d)) {
                        for (((a, b), &h), &dy) in dg.iter_mut().zip(db.iter_mut()).zip(xh).zip(dv)
                        {
                            *a += dy * h;
                            *b += dy;
                        }
                    }
                    (dg, db)
                })
                .collect();
            let (mut dg, mut db) = (vec![0.0f32; d], vec![0.0f32; d]);
            for (pg, pb) in &partial {
                dg.iter_mut().zip(pg).for_each(|(a, b)| *a += b);
                db.iter_mut().zip(pb).for_each(|(a, b)| *a += b);
            }
            if let Some(node) = node_gamma {
                grads.register::<Flex>(node.id, f32_tensor(dg, vec![d]));
            }
            if let Some(node) = node_beta {
                grads.register::<Flex>(node.id, f32_tensor(db, vec![d]));
            }
        }
    }
}

#[derive(Debug)]
struct SoftmaxBackward {
    scale: f32,
}

/// dx = scale·y·(dy − Σ dy·y), per row.
impl Backward<Flex, 1> for SoftmaxBackward {
    /// The output.
    type State = FlexTensor;

    fn backward(self, ops: Ops<Self::State, 1>, grads: &mut Gradients, _: &mut Checkpointer) {
        let [node] = ops.parents;
        let dy = dense_f32(grads.consume::<Flex>(&ops.node), "softmax backward");
        let Some(node) = node else { return };
        let y = ops.state;
        let d = last_dim(&y);
        let (ys, ds) = (y.storage::<f32>(), dy.storage::<f32>());
        let mut dx = vec![0.0f32; ys.len()];
        let block = ROWS_PER_TASK * d;
        let scale = self.scale;
        dx.par_chunks_mut(block)
            .zip(ys.par_chunks(block).zip(ds.par_chunks(block)))
            .for_each(|(out, (yv, dv))| {
                for ((o, y), dv) in out.chunks_mut(d).zip(yv.chunks(d)).zip(dv.chunks(d)) {
                    let dot: f32 = y.iter().zip(dv).map(|(a, b)| a * b).sum();
                    for ((o, &y), &g) in o.iter_mut().zip(y).zip(dv) {
                        *o = scale * y * (g - dot);
                    }
                }
            });
        grads.register::<Flex>(node.id, f32_tensor(dx, y.layout().shape().to_vec()));
    }
}

impl<C: CheckpointStrategy> TransformerOps for Autodiff<Flex, C> {
    fn gelu_exact(x: FloatTensor<Self>) -> FloatTensor<Self> {
        match GeluBackward
            .prepare::<C>([x.node()])
            .compute_bound()
            .stateful()
        {
            OpsKind::Tracked(prep) => {
                let xp = dense_f32(x.into_primitive(), "gelu");
                let y = gelu_forward(xp.clone());
                prep.finish(xp, y)
            }
            OpsKind::UnTracked(prep) => prep.finish(gelu_forward(x.into_primitive())),
        }
    }

    fn layer_norm_last(
        x: FloatTensor<Self>,
        gamma: FloatTensor<Self>,
        beta: FloatTensor<Self>,
        epsilon: f64,
    ) -> FloatTensor<Self> {
        let gp = dense_f32(gamma.primitive().clone(), "layer norm");
        let bp = dense_f32(beta.primitive().clone(), "layer norm");
        match LayerNormBackward
            .prepare::<C>([x.node(), gamma.node(), beta.node()])
            .compute_bound()
            .stateful()
        {
            OpsKind::Tracked(prep) => {
                let xp = x.into_primitive();
                let shape = xp.layout().shape().to_vec();
                let (xhat, rstd, y) = layer_norm_forward(xp, gp.storage(), bp.storage(), epsilon);
                prep.finish((xhat, rstd, gp, shape), y)
            }
            OpsKind::UnTracked(prep) => prep.finish(
                layer_norm_forward(x.into_primitive(), gp.storage(), bp.storage(), epsilon).2,
            ),
        }
    }

    fn softmax_last(x: FloatTensor<Self>, scale: f64) -> FloatTensor<Self> {
        let backward = SoftmaxBackward {
            scale: scale as f32,
        };
        match backward.prepare::<C>([x.node()]).compute_bound().stateful() {
            OpsKind::Tracked(prep) => {
                let y = softmax_forward(x.into_primitive(), scale);
                prep.finish(y.clone(), y)
            }
            OpsKind::UnTracked(prep) => prep.finish(softmax_forward(x.into_primitive(), scale)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// erf by its Maclaurin series in f64 (alternating, fine to |x| ≤ 4 in
    /// f64: about 1e-10).
    fn erf_series(x: f64) -> f64 {
        let (mut term, mut sum) = (x, x);
        for n in 1..200 {
            term *= -x * x / n as f64;
            sum += term / (2 * n + 1) as f64;
        }
        sum * 2.0 / std::f64::consts::PI.sqrt()
    }

    #[test]
    fn erf_within_5e7_of_the_series() {
        let mut worst = 0.0f64;
        for i in -4000..=4000 {
            let x = i as f64 / 1000.0;
            worst = worst.max((erf(x as f32) as f64 - erf_series(x)).abs());
        }
        assert!(worst < 5e-7, "erf off by {worst}");
        // Saturates to ±1 beyond the fitted range, where f32's erf is ±1.
        assert_eq!(erf(9.0), erf(4.0));
        assert!((erf(-30.0) + 1.0).abs() < 1e-6);
    }

    #[test]
    fn exp_within_2_ulp_of_std() {
        let mut worst = 0.0f64;
        for i in 0..=87_000 {
            let x = -(i as f32) / 1000.0;
            let rel = ((exp_nonpositive(x) as f64 - (x as f64).exp()) / (x as f64).exp()).abs();
            worst = worst.max(rel);
        }
        assert!(
            worst < 2.0 * f32::EPSILON as f64,
            "exp off by {worst} relative"
        );
        assert_eq!(exp_nonpositive(0.0), 1.0);
        // Clamped at −87, not flushed to zero or an infinity.
        assert!(exp_nonpositive(-1e9) > 0.0 && exp_nonpositive(-1e9).is_finite());
    }
}
