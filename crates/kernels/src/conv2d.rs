//! 2-D convolution on the flex (CPU) backend: all three passes as GEMMs
//! into buffers this module owns.
//!
//! burn-flex 0.22 convolves tile by tile with one small product per (image,
//! 512-pixel tile), computes the input gradient through a transposed
//! convolution and col2im, and the weight gradient as a convolution of the
//! input by the output gradient: one product per input channel, only k·k
//! columns wide, after copying the input k·k times. Here, with
//! `cols(x[n])` the im2col of image n (`[C·k·k, P]`, P output pixels):
//!
//! ```text
//! forward        Y[n]  = W[O, C·k·k] · cols(x[n])             per image (late layers: a few images per product)
//! weight grad    dWᵀ  += cols(x[n..]) · dY[n..]ᵀ              groups of images, fixed parts summed in order
//! input grad     dX[n] = conv(dY[n], flipped W)  (stride 1)   else Wᵀ · dY[n], then col2im
//! ```
//!
//! Images run in parallel on rayon; each product runs on one thread, into
//! scratch reused by that thread. `cols` is rebuilt in the backward pass
//! instead of being kept: it is k·k times the size of the layer's input.
//! Every reduction has a fixed order, so results do not depend on the
//! number of threads.

use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::CheckpointStrategy;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops, OpsKind};
use burn::backend::flex::FlexTensor;
use burn::backend::tensor::FloatTensor;
use burn::backend::{Autodiff, Backend, Flex, backend_extension};

use crate::flex::{dense_f32, f32_tensor};
use crate::gemm::{MatRef, matmul};
use crate::layout::{ConvDims, transpose};
use crate::winograd;
use rayon::prelude::*;
use std::ops::Range;

/// Convolution without bias, groups or dilation, as ResNets use it.
#[backend_extension(Flex, Autodiff)]
pub trait GemmConv2d: Backend {
    /// `x` `[N, C, H, W]`, `weight` `[O, C, kh, kw]` → `[N, O, Ho, Wo]`.
    fn gemm_conv2d(
        x: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        stride: [usize; 2],
        padding: [usize; 2],
    ) -> FloatTensor<Self>;
}

/// A dense `[N, C, H, W]` float tensor (copied only if it is not).
fn nchw(t: FlexTensor) -> FlexTensor {
    dense_f32(t, "conv2d")
}

fn dims4(t: &FlexTensor) -> [usize; 4] {
    let shape = t.layout().shape();
    assert_eq!(shape.num_dims(), 4, "conv2d: expected a 4-d tensor");
    [shape[0], shape[1], shape[2], shape[3]]
}

/// One image's `cols[(c, i, j), (oh, ow)] = x[c, oh·sh + i − ph, ow·sw + j − pw]`
/// (zero outside the image): `C·k·k` rows of P values, row r starting at
/// `cols[r · ld]`; overwrites all of them.
fn im2col(x: &[f32], d: &ConvDims, cols: &mut [f32], ld: usize) {
    im2col_rows(x, d, 0..d.rows(), cols, ld);
}

/// `im2col` for the rows in `rows` only, row `r` starting at
/// `cols[(r − rows.start) · ld]`.
fn im2col_rows(x: &[f32], d: &ConvDims, rows: Range<usize>, cols: &mut [f32], ld: usize) {
    let p = d.ho * d.wo;
    let same_width = d.sh == 1 && d.sw == 1 && d.wo == d.w;
    // Rows are (c, i, j) in that order; walking them by counters rather than
    // dividing matters for late layers, whose rows are 16 values long.
    let first = rows.start;
    let (mut c, mut i, mut j) = (first / (d.kh * d.kw), (first / d.kw) % d.kh, first % d.kw);
    for row in rows {
        let dst = &mut cols[(row - first) * ld..(row - first) * ld + p];
        let plane = &x[c * d.h * d.w..(c + 1) * d.h * d.w];
        let (lo, hi) = d.valid_ow(j);
        let (ki, kj) = (i, j);
        j += 1;
        if j == d.kw {
            j = 0;
            i += 1;
            if i == d.kh {
                i = 0;
                c += 1;
            }
        }
        let (i, j) = (ki, kj);
        if same_width {
            shifted_plane(plane, d, (i, j), (lo, hi), dst);
            continue;
        }
        for (oh, out) in dst.chunks_exact_mut(d.wo).enumerate() {
            let Some(ih) = d.input_row(oh, i) else {
                out.fill(0.0);
                continue;
            };
            let src = &plane[ih * d.w..(ih + 1) * d.w];
            out[..lo].fill(0.0);
            out[hi..].fill(0.0);
            if lo < hi {
                let start = lo * d.sw + j - d.pw;
                if d.sw == 1 {
                    out[lo..hi].copy_from_slice(&src[start..start + (hi - lo)]);
                } else {
                    let taken = src[start..].iter().step_by(d.sw);
                    out[lo..hi].iter_mut().zip(taken).for_each(|(v, s)| *v = *s);
                }
            }
        }
    }
}

/// One `im2col` row of a stride-1 convolution whose output rows are as wide
/// as its input rows (3x3 with padding 1, as ResNets use it): the plane
/// shifted by `(i − ph)·W + (j − pw)`, copied in one piece, then the rows
/// and columns that fall outside the image zeroed. Row by row, late layers
/// (4- and 8-wide rows) spent their time in call overhead of tiny copies.
fn shifted_plane(
    plane: &[f32],
    d: &ConvDims,
    (i, j): (usize, usize),
    (lo, hi): (usize, usize),
    dst: &mut [f32],
) {
    let (w, p) = (d.w, d.ho * d.wo);
    // Output rows whose input row oh + i − ph lies inside the image.
    let first_row = d.ph.saturating_sub(i).min(d.ho);
    let end_row = (d.h + d.ph).saturating_sub(i).clamp(first_row, d.ho);
    let (start, end) = (first_row * w, end_row * w);
    dst[..start].fill(0.0);
    dst[end..].fill(0.0);
    // dst[q] = plane[q + shift], clipped to the plane; whatever the clipping
    // leaves out is a column outside the image, zeroed below.
    let shift = (i * w + j) as isize - (d.ph * w + d.pw) as isize;
    let q_lo = start.max((-shift).max(0) as usize);
    let q_hi = end.min((plane.len() as isize - shift).max(0) as usize);
    if q_lo < q_hi {
        let from = (q_lo as isize + shift) as usize;
        dst[q_lo..q_hi].copy_from_slice(&plane[from..from + (q_hi - q_lo)]);
    }
    // Column by column: these are one or two columns, and a fill per row
    // would be a call per value.
    for col in (0..lo).chain(hi..w) {
        dst[start..end]
            .iter_mut()
            .skip(col)
            .step_by(w)
            .for_each(|v| *v = 0.0);
    }
    debug_assert_eq!(dst.len(), p);
}

/// The adjoint of `im2col`: adds one image's `cols` onto its input
/// positions in `dx` (`[C, H, W]`).
fn col2im(cols: &[f32], d: &ConvDims, dx: &mut [f32]) {
    let p = d.ho * d.wo;
    for (row, src_row) in cols.chunks_exact(p).enumerate() {
        let (c, i, j) = (row / (d.kh * d.kw), (row / d.kw) % d.kh, row % d.kw);
        let plane = &mut dx[c * d.h * d.w..(c + 1) * d.h * d.w];
        let (lo, hi) = d.valid_ow(j);
        if lo >= hi {
            continue;
        }
        let first = lo * d.sw + j - d.pw;
        for (oh, src) in src_row.chunks_exact(d.wo).enumerate() {
            let Some(ih) = d.input_row(oh, i) else {
                continue;
            };
            let out = &mut plane[ih * d.w..(ih + 1) * d.w];
            for (k, s) in src[lo..hi].iter().enumerate() {
                out[first + k * d.sw] += s;
            }
        }
    }
}

/// A 1x1, stride-1, unpadded convolution reads the image as its own `cols`.
fn is_pointwise(d: &ConvDims) -> bool {
    d.kh == 1 && d.kw == 1 && d.sh == 1 && d.sw == 1 && d.ph == 0 && d.pw == 0
}

/// `y[n] = W · cols(x[n])` for every image, in parallel, into a contiguous
/// `[N, O, Ho, Wo]` buffer. `w` is `[O, C·k·k]`. Images with few output
/// pixels (late layers: 16 or 64) share one product, up to 8 of them: a
/// 16-column product leaves the GEMM's 64-row micro-kernel mostly idle.
/// The group size depends on the shape alone, so results do not depend on
/// the number of threads.
fn forward_images(x: &[f32], w: &[f32], d: &ConvDims) -> Vec<f32> {
    if winograd::applies(d) {
        return winograd::forward_images(x, w, d);
    }
    let (p, rows, image) = (d.ho * d.wo, d.rows(), d.c * d.h * d.w);
    let group = 256usize.div_ceil(p).clamp(1, 8);
    let mut y = vec![0.0f32; d.n * d.o * p];
    y.par_chunks_mut(group * d.o * p).enumerate().for_each_init(
        || (Vec::new(), Vec::new()),
        |(cols, out), (unit, y_unit)| {
            let first = unit * group;
            let count = y_unit.len() / (d.o * p);
            if count == 1 {
                let x_n = &x[first * image..(first + 1) * image];
                let rhs = if is_pointwise(d) {
                    x_n
                } else {
                    cols.resize(rows * p, 0.0);
                    im2col(x_n, d, cols, p);
                    cols
                };
                let (lhs, rhs) = (MatRef::row_major(w, rows), MatRef::row_major(rhs, p));
                matmul(y_unit, p, false, lhs, rhs, [d.o, p, rows]);
                return;
            }
            let width = count * p;
            cols.resize(rows * width, 0.0);
            for k in 0..count {
                let n = first + k;
                im2col(&x[n * image..(n + 1) * image], d, &mut cols[k * p..], width);
            }
            out.resize(d.o * width, 0.0);
            let (lhs, rhs) = (MatRef::row_major(w, rows), MatRef::row_major(cols, width));
            matmul(out, width, false, lhs, rhs, [d.o, width, rows]);
            // [O, images·P] back to [images, O, P].
            for k in 0..count {
                for o in 0..d.o {
                    y_unit[(k * d.o + o) * p..][..p]
                        .copy_from_slice(&out[o * width + k * p..][..p]);
                }
            }
        },
    );
    y
}

fn forward(
    x: FlexTensor,
    weight: FlexTensor,
    stride: [usize; 2],
    padding: [usize; 2],
) -> FlexTensor {
    let (x, weight) = (nchw(x), nchw(weight));
    let d = ConvDims::new(dims4(&x), dims4(&weight), stride, padding);
    let y = forward_images(x.storage::<f32>(), weight.storage::<f32>(), &d);
    f32_tensor(y, [d.n, d.o, d.ho, d.wo])
}

/// Weight gradient `[O, C, kh, kw]` = Σₙ dY[n] · cols(x[n])ᵀ, by whichever
/// of two schemes suits the shape (chosen by the shape alone; both give
/// results that do not depend on the number of threads).
///
/// The product is taken transposed, dWᵀ += cols · dYᵀ, with dY copied to
/// pixel-major order first: the GEMM wants its right operand row-major, and
/// with `cols` as a transposed right operand it ran 3-4x slower (30-100
/// against ~250 GFLOP/s here), while the copy is 1/(k·k) of the im2col.
fn weight_grad(x: &[f32], dy: &[f32], d: &ConvDims) -> FlexTensor {
    if winograd::applies(d) {
        return f32_tensor(winograd::weight_grad(x, dy, d), [d.o, d.c, d.kh, d.kw]);
    }
    let dw_t = if d.n * d.ho * d.wo <= WHOLE_BATCH_PIXELS {
        weight_grad_by_rows(x, dy, d)
    } else {
        weight_grad_by_images(x, dy, d)
    };
    let mut dw = vec![0.0f32; d.o * d.rows()];
    transpose(&dw_t, d.rows(), d.o, &mut dw);
    f32_tensor(dw, [d.o, d.c, d.kh, d.kw])
}

/// Up to this many output pixels in the whole batch, the weight gradient
/// is one product per slab of dWᵀ rows over the whole batch
/// (`weight_grad_by_rows`); above, partial sums over parts of the batch.
/// Late layers have few pixels and large kernels (layer 4 of a width-64
/// ResNet-18 at batch 32: 512 pixels, dW 2.4 M values): eight partial dW
/// buffers, each zeroed, filled by a product only 64 deep, and summed, cost
/// more memory traffic than the product itself.
const WHOLE_BATCH_PIXELS: usize = 4096;

/// dWᵀ `[C·k·k, O]` = cols(x) · dYᵀ over the whole batch, in a fixed number
/// of row slabs computed in parallel. Each value is one product's sum over
/// every pixel of the batch, whatever the scheduling, so the result does not
/// depend on the number of threads.
fn weight_grad_by_rows(x: &[f32], dy: &[f32], d: &ConvDims) -> Vec<f32> {
    const SLABS: usize = 8;
    let (p, rows, image) = (d.ho * d.wo, d.rows(), d.c * d.h * d.w);
    let width = d.n * p;
    let mut dy_t = vec![0.0f32; width * d.o];
    dy_t.par_chunks_mut(p * d.o)
        .zip(dy.par_chunks(d.o * p))
        .for_each(|(dst, src)| transpose(src, d.o, p, dst));
    let slab = rows.div_ceil(SLABS).max(1);
    let mut dw_t = vec![0.0f32; rows * d.o];
    dw_t.par_chunks_mut(slab * d.o)
        .enumerate()
        .for_each(|(s, dst)| {
            let slab_rows = s * slab..(s * slab + dst.len() / d.o);
            let mut cols = vec![0.0f32; slab_rows.len() * width];
            for n in 0..d.n {
                let x_n = &x[n * image..(n + 1) * image];
                im2col_rows(x_n, d, slab_rows.clone(), &mut cols[n * p..], width);
            }
            matmul(
                dst,
                d.o,
                false,
                MatRef::row_major(&cols, width),
                MatRef::row_major(&dy_t, d.o),
                [slab_rows.len(), d.o, width],
            );
        });
    dw_t
}

/// dWᵀ as the sum of partial products over parts of the batch: the batch is
/// cut into a fixed number of parts, each summed into its own buffer on one
/// thread and the buffers added in order, so the result does not depend on
/// how work was scheduled. Within a part, images go into one product in
/// groups of ≥ 512 pixels, so that a product is never only one small
/// image deep.
fn weight_grad_by_images(x: &[f32], dy: &[f32], d: &ConvDims) -> Vec<f32> {
    const PARTS: usize = 8;
    let (p, rows, image) = (d.ho * d.wo, d.rows(), d.c * d.h * d.w);
    let per_part = d.n.div_ceil(PARTS).max(1);
    let group = 512usize.div_ceil(p).clamp(1, per_part);
    let partials: Vec<Vec<f32>> = (0..d.n.div_ceil(per_part))
        .into_par_iter()
        .map(|part| {
            let mut acc = vec![0.0f32; rows * d.o];
            let (mut cols, mut dy_t) = (Vec::new(), Vec::new());
            let end = ((part + 1) * per_part).min(d.n);
            for first in (part * per_part..end).step_by(group) {
                let images = first..(first + group).min(end);
                let width = images.len() * p;
                cols.resize(rows * width, 0.0);
                dy_t.resize(width * d.o, 0.0);
                for (k, n) in images.enumerate() {
                    im2col(&x[n * image..(n + 1) * image], d, &mut cols[k * p..], width);
                    let dy_n = &dy[n * d.o * p..(n + 1) * d.o * p];
                    transpose(dy_n, d.o, p, &mut dy_t[k * p * d.o..(k + 1) * p * d.o]);
                }
                matmul(
                    &mut acc,
                    d.o,
                    true,
                    MatRef::row_major(&cols, width),
                    MatRef::row_major(&dy_t, d.o),
                    [rows, d.o, width],
                );
            }
            acc
        })
        .collect();
    let mut dw_t = vec![0.0f32; rows * d.o];
    for part in &partials {
        dw_t.iter_mut().zip(part).for_each(|(a, b)| *a += b);
    }
    dw_t
}

/// Input gradient `[N, C, H, W]`.
///
/// With stride 1 it is the forward convolution of the output gradient by
/// the kernel flipped in space with its channel axes swapped, padded by
/// k − 1 − p: per image one product whose output is the input gradient
/// itself. Strided convolutions take `Wᵀ · dY[n]` and scatter it back
/// (col2im), which writes a k·k times larger intermediate.
fn input_grad(w: &[f32], dy: &[f32], d: &ConvDims) -> FlexTensor {
    let (o, c, kh, kw) = (d.o, d.c, d.kh, d.kw);
    if d.sh == 1 && d.sw == 1 && d.ph < kh && d.pw < kw {
        let mut flipped = vec![0.0f32; w.len()];
        for oc in 0..o {
            for cc in 0..c {
                for i in 0..kh {
                    for j in 0..kw {
                        flipped[((cc * o + oc) * kh + i) * kw + j] =
                            w[((oc * c + cc) * kh + (kh - 1 - i)) * kw + (kw - 1 - j)];
                    }
                }
            }
        }
        let back = ConvDims::new(
            [d.n, o, d.ho, d.wo],
            [c, o, kh, kw],
            [1, 1],
            [kh - 1 - d.ph, kw - 1 - d.pw],
        );
        debug_assert_eq!((back.ho, back.wo), (d.h, d.w));
        return f32_tensor(forward_images(dy, &flipped, &back), [d.n, c, d.h, d.w]);
    }
    let (p, rows, image) = (d.ho * d.wo, d.rows(), c * d.h * d.w);
    let mut dx = vec![0.0f32; d.n * image];
    dx.par_chunks_mut(image)
        .enumerate()
        .for_each_init(Vec::new, |cols, (n, dx_n)| {
            cols.resize(rows * p, 0.0);
            matmul(
                cols,
                p,
                false,
                MatRef::row_major(w, rows).transposed(),
                MatRef::row_major(&dy[n * o * p..(n + 1) * o * p], p),
                [rows, p, o],
            );
            col2im(cols, d, dx_n);
        });
    f32_tensor(dx, [d.n, c, d.h, d.w])
}

impl GemmConv2d for Flex {
    fn gemm_conv2d(
        x: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        stride: [usize; 2],
        padding: [usize; 2],
    ) -> FloatTensor<Self> {
        forward(x, weight, stride, padding)
    }
}

#[derive(Debug)]
struct GemmConv2dBackward {
    stride: [usize; 2],
    padding: [usize; 2],
}

impl Backward<Flex, 2> for GemmConv2dBackward {
    type State = (FlexTensor, FlexTensor);

    fn backward(
        self,
        ops: Ops<Self::State, 2>,
        grads: &mut Gradients,
        _checkpointer: &mut Checkpointer,
    ) {
        let [node_x, node_w] = ops.parents;
        let dy = grads.consume::<Flex>(&ops.node);
        let (x, weight) = ops.state;
        let (x, weight, dy) = (nchw(x), nchw(weight), nchw(dy));
        let d = ConvDims::new(dims4(&x), dims4(&weight), self.stride, self.padding);
        let dy = dy.storage::<f32>();
        if let Some(node) = node_w {
            grads.register::<Flex>(node.id, weight_grad(x.storage::<f32>(), dy, &d));
        }
        if let Some(node) = node_x {
            grads.register::<Flex>(node.id, input_grad(weight.storage::<f32>(), dy, &d));
        }
    }
}

impl<C: CheckpointStrategy> GemmConv2d for Autodiff<Flex, C> {
    fn gemm_conv2d(
        x: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        stride: [usize; 2],
        padding: [usize; 2],
    ) -> FloatTensor<Self> {
        let backward = GemmConv2dBackward { stride, padding };
        match backward
            .prepare::<C>([x.node(), weight.node()])
            .compute_bound()
            .stateful()
        {
            OpsKind::Tracked(prep) => {
                let xp = x.primitive().clone();
                let wp = weight.primitive().clone();
                let y = forward(xp.clone(), wp.clone(), stride, padding);
                prep.finish((xp, wp), y)
            }
            OpsKind::UnTracked(prep) => prep.finish(forward(
                x.into_primitive(),
                weight.into_primitive(),
                stride,
                padding,
            )),
        }
    }
}
