//! The layers of a transformer block on the flex (CPU) backend, forward and
//! backward: a linear layer with its bias (and an exact, erf, GELU) applied
//! in one pass over the product, LayerNorm over the last axis in one pass,
//! and multi-head self-attention from packed q, k, v (its products read the
//! heads in place through strides; the softmax is computed in place
//! between them).
//!
//! burn's autodiff builds LayerNorm and softmax from about ten tracked
//! operations each (a pass over the activation apiece, forward and
//! backward), its flex element-wise operations, bias and GELU included,
//! run on one thread (GELU with a scalar `erf`), and splitting heads copies
//! the activations several times. In a vit-tiny train step those passes
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
use crate::gemm::{MatRef, matmul, matmul_parallel};

#[backend_extension(Flex, Autodiff)]
pub trait TransformerOps: Backend {
    /// `(x − mean) / sqrt(var + ε) · γ + β` over the last axis (biased
    /// variance); differentiable in `x`, `γ` and `β`.
    fn layer_norm_last(
        x: FloatTensor<Self>,
        gamma: FloatTensor<Self>,
        beta: FloatTensor<Self>,
        epsilon: f64,
    ) -> FloatTensor<Self>;

    /// Multi-head self-attention from packed projections: `qkv` `[B, T,
    /// 3·D]` (queries, keys, values, each `heads` blocks of D/heads) to
    /// `[B, T, D]`, heads side by side: softmax(q·kᵀ/√(D/heads))·v per head.
    fn attention_packed(qkv: FloatTensor<Self>, heads: usize) -> FloatTensor<Self>;

    /// `x · w + b` over the last axis of `x` (`w` `[d_in, d_out]`, burn's
    /// layout), with `gelu` applied after when asked: one product into a
    /// fresh buffer, the bias (and GELU) in the same pass over it.
    fn linear_fused(
        x: FloatTensor<Self>,
        w: FloatTensor<Self>,
        b: FloatTensor<Self>,
        gelu: bool,
    ) -> FloatTensor<Self>;
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

/// `[B, T, 3·D]` → (B, T, D, heads, head size).
fn attention_geometry(qkv: &FlexTensor, heads: usize) -> (usize, usize, usize, usize, usize) {
    let shape = qkv.layout().shape();
    assert_eq!(
        shape.num_dims(),
        3,
        "attention: qkv must be [batch, tokens, 3·dim]"
    );
    let (b, t, three_d) = (shape[0], shape[1], shape[2]);
    assert!(
        three_d % 3 == 0 && heads > 0 && (three_d / 3) % heads == 0,
        "attention: {three_d} packed features for {heads} heads"
    );
    let d = three_d / 3;
    (b, t, d, heads, d / heads)
}

/// Rows of `s` (`[T, T]`) to softmax(scale · s), in place.
fn softmax_rows(s: &mut [f32], t: usize, scale: f32) {
    for row in s.chunks_mut(t) {
        let max = row.iter().fold(f32::NEG_INFINITY, |m, &v| m.max(v * scale));
        let mut sum = 0.0f32;
        for v in row.iter_mut() {
            *v = exp_nonpositive(*v * scale - max);
            sum += *v;
        }
        let inv = 1.0 / sum;
        row.iter_mut().for_each(|v| *v *= inv);
    }
}

/// The output `[B, T, D]` and the attention weights `[B, heads, T, T]`
/// (kept for the backward pass). One task per image; the products read q,
/// k and v in place through strides (no head split, no transposes).
fn attention_forward(qkv: &FlexTensor, heads: usize) -> (FlexTensor, Vec<f32>) {
    let (b, t, d, heads, hd) = attention_geometry(qkv, heads);
    let x = qkv.storage::<f32>();
    let scale = 1.0 / (hd as f32).sqrt();
    let mut out = vec![0.0f32; b * t * d];
    let mut weights = vec![0.0f32; b * heads * t * t];
    out.par_chunks_mut(t * d)
        .zip(weights.par_chunks_mut(heads * t * t))
        .zip(x.par_chunks(t * 3 * d))
        .for_each(|((out, p), x)| {
            for (h, p) in p.chunks_mut(t * t).enumerate() {
                let q = MatRef {
                    data: &x[h * hd..],
                    rs: 3 * d,
                    cs: 1,
                };
                let k = MatRef {
                    data: &x[d + h * hd..],
                    rs: 3 * d,
                    cs: 1,
                };
                let v = MatRef {
                    data: &x[2 * d + h * hd..],
                    rs: 3 * d,
                    cs: 1,
                };
                matmul(p, t, false, q, k.transposed(), [t, t, hd]);
                softmax_rows(p, t, scale);
                let p = MatRef::row_major(p, t);
                matmul(&mut out[h * hd..], d, false, p, v, [t, hd, t]);
            }
        });
    (f32_tensor(out, vec![b, t, d]), weights)
}

/// d(qkv) from d(out), per image and head: dV = Pᵀ·dO, dP = dO·Vᵀ,
/// dS = scale · P ⊙ (dP − rowsum(dP ⊙ P)), dQ = dS·K, dK = dSᵀ·Q.
fn attention_backward(
    qkv: &FlexTensor,
    weights: &[f32],
    heads: usize,
    dy: &FlexTensor,
) -> FlexTensor {
    let (b, t, d, heads, hd) = attention_geometry(qkv, heads);
    let (x, dy) = (qkv.storage::<f32>(), dy.storage::<f32>());
    let scale = 1.0 / (hd as f32).sqrt();
    let mut dx = vec![0.0f32; b * t * 3 * d];
    dx.par_chunks_mut(t * 3 * d)
        .zip(x.par_chunks(t * 3 * d))
        .zip(weights.par_chunks(heads * t * t).zip(dy.par_chunks(t * d)))
        .for_each(|((dx, x), (p, dy))| {
            let mut ds = vec![0.0f32; t * t];
            for (h, p) in p.chunks(t * t).enumerate() {
                let at = |base: usize| MatRef {
                    data: &x[base + h * hd..],
                    rs: 3 * d,
                    cs: 1,
                };
                let (q, k, v) = (at(0), at(d), at(2 * d));
                let pm = MatRef::row_major(p, t);
                let d_out = MatRef {
                    data: &dy[h * hd..],
                    rs: d,
                    cs: 1,
                };
                matmul(
                    &mut dx[2 * d + h * hd..],
                    3 * d,
                    false,
                    pm.transposed(),
                    d_out,
                    [t, hd, t],
                );
                matmul(&mut ds, t, false, d_out, v.transposed(), [t, t, hd]);
                for (dsr, pr) in ds.chunks_mut(t).zip(p.chunks(t)) {
                    let dot: f32 = dsr.iter().zip(pr).map(|(a, b)| a * b).sum();
                    for (g, &pv) in dsr.iter_mut().zip(pr) {
                        *g = scale * pv * (*g - dot);
                    }
                }
                let dsm = MatRef::row_major(&ds, t);
                matmul(&mut dx[h * hd..], 3 * d, false, dsm, k, [t, hd, t]);
                matmul(
                    &mut dx[d + h * hd..],
                    3 * d,
                    false,
                    dsm.transposed(),
                    q,
                    [t, hd, t],
                );
            }
        });
    f32_tensor(dx, vec![b, t, 3 * d])
}

/// (rows, d_in, d_out) of `x · w`, checked.
fn linear_geometry(x: &FlexTensor, w: &FlexTensor, b: &FlexTensor) -> (usize, usize, usize) {
    let ws = w.layout().shape();
    assert_eq!(ws.num_dims(), 2, "linear: the weight must be [d_in, d_out]");
    let (d_in, d_out) = (ws[0], ws[1]);
    assert_eq!(
        last_dim(x),
        d_in,
        "linear: input rows of {} for a [{d_in}, {d_out}] weight",
        last_dim(x)
    );
    assert_eq!(
        b.layout().shape().num_elements(),
        d_out,
        "linear: bias size"
    );
    (x.layout().shape().num_elements() / d_in.max(1), d_in, d_out)
}

/// `x·w + b` (pre-activation) and, with `gelu`, GELU of it as the output.
fn linear_forward(
    x: &FlexTensor,
    w: &FlexTensor,
    b: &FlexTensor,
    gelu: bool,
) -> (Vec<f32>, FlexTensor) {
    let (m, k, n) = linear_geometry(x, w, b);
    let mut shape = x.layout().shape().to_vec();
    *shape.last_mut().expect("an axis") = n;
    let mut z = vec![0.0f32; m * n];
    matmul_parallel(
        &mut z,
        n,
        false,
        MatRef::row_major(x.storage::<f32>(), k),
        MatRef::row_major(w.storage::<f32>(), n),
        [m, n, k],
    );
    let bias = b.storage::<f32>();
    let rows = (ROWS_PER_TASK * 4).max(1);
    if gelu {
        let mut y = vec![0.0f32; m * n];
        y.par_chunks_mut(rows * n)
            .zip(z.par_chunks_mut(rows * n))
            .for_each(|(y, z)| {
                for (y, z) in y.chunks_mut(n).zip(z.chunks_mut(n)) {
                    for ((y, z), &b) in y.iter_mut().zip(z.iter_mut()).zip(bias) {
                        *z += b;
                        *y = 0.5 * *z * (1.0 + erf(*z * FRAC_1_SQRT_2));
                    }
                }
            });
        (z, f32_tensor(y, shape))
    } else {
        z.par_chunks_mut(rows * n).for_each(|z| {
            for z in z.chunks_mut(n) {
                z.iter_mut().zip(bias).for_each(|(z, &b)| *z += b);
            }
        });
        (Vec::new(), f32_tensor(z, shape))
    }
}

impl TransformerOps for Flex {
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

    fn attention_packed(qkv: FloatTensor<Self>, heads: usize) -> FloatTensor<Self> {
        attention_forward(&dense_f32(qkv, "attention"), heads).0
    }

    fn linear_fused(
        x: FloatTensor<Self>,
        w: FloatTensor<Self>,
        b: FloatTensor<Self>,
        gelu: bool,
    ) -> FloatTensor<Self> {
        let (x, w, b) = (
            dense_f32(x, "linear"),
            dense_f32(w, "linear"),
            dense_f32(b, "linear"),
        );
        linear_forward(&x, &w, &b, gelu).1
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
struct AttentionBackward {
    heads: usize,
}

impl Backward<Flex, 1> for AttentionBackward {
    /// The packed input and the attention weights.
    type State = (FlexTensor, Vec<f32>);

    fn backward(self, ops: Ops<Self::State, 1>, grads: &mut Gradients, _: &mut Checkpointer) {
        let [node] = ops.parents;
        let dy = dense_f32(grads.consume::<Flex>(&ops.node), "attention backward");
        if let Some(node) = node {
            let (qkv, weights) = &ops.state;
            grads.register::<Flex>(node.id, attention_backward(qkv, weights, self.heads, &dy));
        }
    }
}

#[derive(Debug)]
struct LinearBackward {
    gelu: bool,
}

/// With z = x·w + b and g = dy (times GELU's derivative at z when fused):
/// dx = g·wᵀ, dw = xᵀ·g, db = Σ_rows g (blocks of rows in a fixed order).
impl Backward<Flex, 3> for LinearBackward {
    /// x, w, and z when GELU follows (empty otherwise).
    type State = (FlexTensor, FlexTensor, Vec<f32>);

    fn backward(self, ops: Ops<Self::State, 3>, grads: &mut Gradients, _: &mut Checkpointer) {
        let [node_x, node_w, node_b] = ops.parents;
        let dy = dense_f32(grads.consume::<Flex>(&ops.node), "linear backward");
        let (x, w, z) = ops.state;
        let ws = w.layout().shape();
        let (k, n) = (ws[0], ws[1]);
        let m = x.layout().shape().num_elements() / k.max(1);
        let rows = ROWS_PER_TASK * 4;
        let through_gelu: Vec<f32>;
        let g: &[f32] = if self.gelu {
            let mut g = vec![0.0f32; m * n];
            g.par_chunks_mut(rows * n)
                .zip(
                    z.par_chunks(rows * n)
                        .zip(dy.storage::<f32>().par_chunks(rows * n)),
                )
                .for_each(|(g, (z, dy))| {
                    for ((g, &v), &d) in g.iter_mut().zip(z).zip(dy) {
                        let cdf = 0.5 * (1.0 + erf(v * FRAC_1_SQRT_2));
                        let pdf = INV_SQRT_2PI * exp_nonpositive(-0.5 * v * v);
                        *g = d * (cdf + v * pdf);
                    }
                });
            through_gelu = g;
            &through_gelu
        } else {
            dy.storage::<f32>()
        };
        let gm = MatRef::row_major(g, n);
        if let Some(node) = node_x {
            let mut dx = vec![0.0f32; m * k];
            let wt = MatRef::row_major(w.storage::<f32>(), n).transposed();
            matmul_parallel(&mut dx, k, false, gm, wt, [m, k, n]);
            grads.register::<Flex>(node.id, f32_tensor(dx, x.layout().shape().to_vec()));
        }
        if let Some(node) = node_w {
            let mut dw = vec![0.0f32; k * n];
            let xt = MatRef::row_major(x.storage::<f32>(), k).transposed();
            matmul_parallel(&mut dw, n, false, xt, gm, [k, n, m]);
            grads.register::<Flex>(node.id, f32_tensor(dw, vec![k, n]));
        }
        if let Some(node) = node_b {
            let partial: Vec<Vec<f32>> = g
                .par_chunks(rows * n)
                .map(|block| {
                    let mut s = vec![0.0f32; n];
                    for row in block.chunks(n) {
                        s.iter_mut().zip(row).for_each(|(a, b)| *a += b);
                    }
                    s
                })
                .collect();
            let mut db = vec![0.0f32; n];
            for p in &partial {
                db.iter_mut().zip(p).for_each(|(a, b)| *a += b);
            }
            grads.register::<Flex>(node.id, f32_tensor(db, vec![n]));
        }
    }
}

impl<C: CheckpointStrategy> TransformerOps for Autodiff<Flex, C> {
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

    fn attention_packed(qkv: FloatTensor<Self>, heads: usize) -> FloatTensor<Self> {
        let backward = AttentionBackward { heads };
        match backward
            .prepare::<C>([qkv.node()])
            .compute_bound()
            .stateful()
        {
            OpsKind::Tracked(prep) => {
                let x = dense_f32(qkv.into_primitive(), "attention");
                let (y, weights) = attention_forward(&x, heads);
                prep.finish((x, weights), y)
            }
            OpsKind::UnTracked(prep) => {
                let x = dense_f32(qkv.into_primitive(), "attention");
                prep.finish(attention_forward(&x, heads).0)
            }
        }
    }

    fn linear_fused(
        x: FloatTensor<Self>,
        w: FloatTensor<Self>,
        b: FloatTensor<Self>,
        gelu: bool,
    ) -> FloatTensor<Self> {
        let wp = dense_f32(w.primitive().clone(), "linear");
        let bp = dense_f32(b.primitive().clone(), "linear");
        let backward = LinearBackward { gelu };
        match backward
            .prepare::<C>([x.node(), w.node(), b.node()])
            .compute_bound()
            .stateful()
        {
            OpsKind::Tracked(prep) => {
                let xp = dense_f32(x.into_primitive(), "linear");
                let (z, y) = linear_forward(&xp, &wp, &bp, gelu);
                prep.finish((xp, wp, z), y)
            }
            OpsKind::UnTracked(prep) => {
                let xp = dense_f32(x.into_primitive(), "linear");
                prep.finish(linear_forward(&xp, &wp, &bp, gelu).1)
            }
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
