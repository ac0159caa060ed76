//! 3x3 stride-1 convolution by Winograd's minimal filtering, F(2x2, 3x3)
//! (Lavin & Gray, "Fast Algorithms for Convolutional Neural Networks", 2016).
//!
//! Each 2x2 block of output is computed from a 4x4 block of input with 16
//! multiplications per input channel instead of 36: the kernel and every
//! input tile are transformed (U = G g Gᵀ, V = Bᵀ d B), the 16 transformed
//! coordinates ξ are 16 independent products M_ξ = U_ξ · V_ξ summing over
//! channels, and each tile of M is transformed back (Y = Aᵀ M A). The
//! products do 2.25x fewer multiply-adds than the im2col GEMM; the
//! transforms are a few passes over input and output, cheap next to the
//! products once a layer has 64 or more channels.
//!
//! The results differ from a direct convolution by rounding only (the
//! transforms' coefficients are 0, ±1 and ±½).

use rayon::prelude::*;

use crate::conv2d::ConvDims;
use crate::gemm::{MatRef, matmul};

/// Tiles in one product at least (the GEMM's rows; late layers group images).
const TILES_PER_PRODUCT: usize = 256;

/// Channels on both sides from which F(2x2, 3x3) pays. The transforms cost
/// per input and output value, the products save per pair of channels:
/// measured on the train step (2-core AVX-512, batch 32), Winograd on
/// width-20 layer 2 (40 channels) made the width-20 step slower, on every
/// layer with 64 or more channels faster.
const MIN_CHANNELS: usize = 64;

/// Whether F(2x2, 3x3) computes this convolution: 3x3, stride 1, and at
/// least `MIN_CHANNELS` channels in and out.
pub(crate) fn applies(d: &ConvDims) -> bool {
    d.kh == 3 && d.kw == 3 && d.sh == 1 && d.sw == 1 && d.c >= MIN_CHANNELS && d.o >= MIN_CHANNELS
}

/// `U[o][ξ][c]` = (G g Gᵀ)ξ for the kernel `g` = `w[o, c]`, with
/// G = [[1, 0, 0], [½, ½, ½], [½, −½, ½], [0, 0, 1]]. Output channels in
/// parallel (layer 4 has 262 k kernels); the product for ξ reads `U_ξ` as
/// an `[O, C]` matrix with row stride 16·C.
fn kernel_transform(w: &[f32], d: &ConvDims) -> Vec<f32> {
    let c_n = d.c;
    let g_rows = |g: [f32; 3]| {
        [
            g[0],
            0.5 * (g[0] + g[1] + g[2]),
            0.5 * (g[0] - g[1] + g[2]),
            g[2],
        ]
    };
    let mut u = vec![0.0f32; 16 * d.o * c_n];
    u.par_chunks_mut(16 * c_n).enumerate().for_each(|(o, u_o)| {
        for c in 0..c_n {
            let g = &w[(o * c_n + c) * 9..][..9];
            // G g: 4x3, column by column.
            let cols: [[f32; 4]; 3] = std::array::from_fn(|j| g_rows([g[j], g[3 + j], g[6 + j]]));
            for a in 0..4 {
                // (G g) Gᵀ: row a of G g, transformed the same way.
                let row = g_rows([cols[0][a], cols[1][a], cols[2][a]]);
                for (b, v) in row.into_iter().enumerate() {
                    u_o[(a * 4 + b) * c_n + c] = v;
                }
            }
        }
    });
    u
}

/// `y[n] = conv(x[n], w)` for every image into a contiguous `[N, O, Ho, Wo]`
/// buffer, as `conv2d::forward_images` does by im2col.
pub(crate) fn forward_images(x: &[f32], w: &[f32], d: &ConvDims) -> Vec<f32> {
    debug_assert!(applies(d));
    let (th, tw) = (d.ho.div_ceil(2), d.wo.div_ceil(2));
    let tiles = th * tw;
    let p = d.ho * d.wo;
    let u = kernel_transform(w, d);
    // Images per product: enough tiles for the GEMM, but at least two
    // products per batch so both cores have work. Fixed by the shape, so the
    // result does not depend on the number of threads.
    let group = TILES_PER_PRODUCT
        .div_ceil(tiles)
        .clamp(1, d.n.div_ceil(2).max(1));
    // Each padded input plane is kept in a polyphase layout (`Polyphase`),
    // so that every step of the transforms is a loop over contiguous tiles.
    let image = d.c * d.h * d.w;
    let mut y = vec![0.0f32; d.n * d.o * p];
    y.par_chunks_mut(group * d.o * p).enumerate().for_each_init(
        || {
            (
                Polyphase::new(d, th, tw),
                Vec::new(),
                Vec::new(),
                Scratch::new(tiles, group * tiles),
            )
        },
        |(plane, v, m, scratch), (unit, y_unit)| {
            let first = unit * group;
            let count = y_unit.len() / (d.o * p);
            let width = count * tiles;
            v.resize(16 * d.c * width, 0.0);
            m.resize(16 * d.o * width, 0.0);
            for k in 0..count {
                let x_n = &x[(first + k) * image..(first + k + 1) * image];
                for c in 0..d.c {
                    plane.fill(&x_n[c * d.h * d.w..(c + 1) * d.h * d.w], d);
                    let v_c = &mut v[c * width + k * tiles..];
                    input_transform(plane, v_c, d.c * width, scratch);
                }
            }
            for xi in 0..16 {
                matmul(
                    &mut m[xi * d.o * width..(xi + 1) * d.o * width],
                    width,
                    false,
                    MatRef {
                        data: &u[xi * d.c..],
                        rs: 16 * d.c,
                        cs: 1,
                    },
                    MatRef::row_major(&v[xi * d.c * width..(xi + 1) * d.c * width], width),
                    [d.o, width, d.c],
                );
            }
            for o in 0..d.o {
                output_transform(&m[o * width..], d.o * width, width, scratch);
                // The unit's 2x2 blocks into its images, a row of tiles at a
                // time: y00/y01 interleaved into output row 2a, y10/y11 into
                // row 2a + 1 (when the output has it).
                let [y00, y01, y10, y11] = &scratch.y;
                for k in 0..count {
                    let out = &mut y_unit[(k * d.o + o) * p..(k * d.o + o + 1) * p];
                    for (a, rows) in out.chunks_mut(2 * d.wo).enumerate() {
                        let t = k * tiles + a * tw;
                        let (top, bottom) = rows.split_at_mut(d.wo.min(rows.len()));
                        interleave(top, &y00[t..t + tw], &y01[t..t + tw]);
                        interleave(bottom, &y10[t..t + tw], &y11[t..t + tw]);
                    }
                }
            }
        },
    );
    y
}

/// `out[2b] = left[b]`, `out[2b + 1] = right[b]`, as far as `out` goes.
fn interleave(out: &mut [f32], left: &[f32], right: &[f32]) {
    let whole = out.len() / 2;
    let mut pairs = out.chunks_exact_mut(2);
    for ((pair, l), r) in (&mut pairs).zip(left).zip(right) {
        pair[0] = *l;
        pair[1] = *r;
    }
    if let ([last], Some(l)) = (pairs.into_remainder(), left.get(whole)) {
        *last = *l;
    }
}

/// One zero-padded input plane (`2·th + 2` rows, `2·tw + 2` columns, the
/// image at offset (ph, pw)) cut into eight `[th + 1, tw]` arrays: by row
/// parity ρ, column parity κ, and σ = left (columns 2b + κ) or right
/// (columns 2b + 2 + κ). Tile (a, b) reads padded rows 2a..2a+4 and columns
/// 2b..2b+4: row 2a + 2ρ' + ρ is array row a + ρ', column 2b + 2σ + κ is
/// array column b of σ. So for every one of its 16 inputs, the tiles of the
/// plane read one array at a·tw + b (+ tw for the lower rows): contiguous.
struct Polyphase {
    parts: [Vec<f32>; 8],
    tw: usize,
}

impl Polyphase {
    fn new(d: &ConvDims, th: usize, tw: usize) -> Self {
        debug_assert!(d.h + d.ph <= 2 * th + 2 && d.w + d.pw <= 2 * tw + 2);
        Self {
            parts: std::array::from_fn(|_| vec![0.0; (th + 1) * tw]),
            tw,
        }
    }

    fn part(rho: usize, kappa: usize, sigma: usize) -> usize {
        (rho * 2 + kappa) * 2 + sigma
    }

    fn fill(&mut self, src: &[f32], d: &ConvDims) {
        let tw = self.tw;
        for part in &mut self.parts {
            part.fill(0.0);
        }
        for r in 0..d.h {
            let pr = r + d.ph;
            let (rho, row) = (pr % 2, (pr / 2) * tw);
            let src = &src[r * d.w..(r + 1) * d.w];
            for kappa in 0..2 {
                // Source columns landing on padded columns of parity κ, and
                // the array column q = pc / 2 of the first of them.
                let first = (kappa + 2 - d.pw % 2) % 2;
                let q0 = (first + d.pw) / 2;
                let values = src.get(first..).unwrap_or(&[]);
                let left = &mut self.parts[Self::part(rho, kappa, 0)][row + q0..row + tw];
                copy_even(left, values);
                // Right: array column q − 1 (the column at q = 0 has none).
                let right = &mut self.parts[Self::part(rho, kappa, 1)];
                if q0 == 0 {
                    copy_even(&mut right[row..row + tw], values.get(2..).unwrap_or(&[]));
                } else {
                    copy_even(&mut right[row + q0 - 1..row + tw], values);
                }
            }
        }
    }
}

/// `dst[m] = src[2m]` as far as both go.
fn copy_even(dst: &mut [f32], src: &[f32]) {
    for (d, pair) in dst.iter_mut().zip(src.chunks(2)) {
        *d = pair[0];
    }
}

/// Per-thread rows for the transforms.
struct Scratch {
    /// Bᵀ applied down the columns of every tile of a plane, by Bᵀ row i,
    /// column parity κ and side σ (as in `Polyphase`).
    bt: [Vec<f32>; 16],
    /// M A for every tile of a unit: 4 rows x 2 columns.
    ma: [[Vec<f32>; 2]; 4],
    /// The 2x2 output blocks of every tile of a unit: y00, y01, y10, y11.
    y: [Vec<f32>; 4],
}

impl Scratch {
    fn new(tiles: usize, width: usize) -> Self {
        Self {
            bt: std::array::from_fn(|_| vec![0.0; tiles]),
            ma: std::array::from_fn(|_| std::array::from_fn(|_| vec![0.0; width])),
            y: std::array::from_fn(|_| vec![0.0; width]),
        }
    }
}

/// Bᵀ's four rows applied to four values.
#[inline(always)]
fn bt_row(i: usize, d0: f32, d1: f32, d2: f32, d3: f32) -> f32 {
    match i {
        0 => d0 - d2,
        1 => d1 + d2,
        2 => d2 - d1,
        _ => d1 - d3,
    }
}

/// V = Bᵀ d B for every tile of one padded plane: tile t's value ξ = 4i + j
/// goes to `v[ξ · pitch + t]`. Bᵀ down the columns (16 loops over all
/// tiles), then B along the rows (16 more), each reading and writing
/// contiguous runs.
fn input_transform(plane: &Polyphase, v: &mut [f32], pitch: usize, scratch: &mut Scratch) {
    let tw = plane.tw;
    let tiles = scratch.bt[0].len();
    for i in 0..4 {
        for kappa in 0..2 {
            for sigma in 0..2 {
                let upper = &plane.parts[Polyphase::part(0, kappa, sigma)];
                let lower = &plane.parts[Polyphase::part(1, kappa, sigma)];
                // Rows 2a, 2a+1, 2a+2, 2a+3 of the tile.
                let (r0, r1) = (&upper[..tiles], &lower[..tiles]);
                let (r2, r3) = (&upper[tw..tw + tiles], &lower[tw..tw + tiles]);
                let out = &mut scratch.bt[(i * 2 + kappa) * 2 + sigma][..tiles];
                for t in 0..tiles {
                    out[t] = bt_row(i, r0[t], r1[t], r2[t], r3[t]);
                }
            }
        }
    }
    for i in 0..4 {
        // Columns 2b, 2b+1, 2b+2, 2b+3 of the tile.
        let [c0, c2, c1, c3] = std::array::from_fn(|k| &scratch.bt[i * 4 + k][..tiles]);
        for j in 0..4 {
            let dst = &mut v[(4 * i + j) * pitch..][..tiles];
            for t in 0..tiles {
                dst[t] = bt_row(j, c0[t], c1[t], c2[t], c3[t]);
            }
        }
    }
}

/// Y = Aᵀ M A for the first `width` tiles of one output channel: tile t's
/// 16 values are at `m[ξ · pitch + t]`; its 2x2 block goes to
/// `scratch.y[2r + s][t]`. A along the rows, then Aᵀ down the columns, each
/// a loop over all tiles of the unit (contiguous, so vector code).
fn output_transform(m: &[f32], pitch: usize, width: usize, scratch: &mut Scratch) {
    for i in 0..4 {
        let row: [&[f32]; 4] = std::array::from_fn(|j| &m[(4 * i + j) * pitch..][..width]);
        let [ma0, ma1] = &mut scratch.ma[i];
        let (ma0, ma1) = (&mut ma0[..width], &mut ma1[..width]);
        for t in 0..width {
            ma0[t] = row[0][t] + row[1][t] + row[2][t];
            ma1[t] = row[1][t] - row[2][t] - row[3][t];
        }
    }
    for s in 0..2 {
        let [q0, q1, q2, q3] = std::array::from_fn(|i| &scratch.ma[i][s][..width]);
        let [y0, y1] = scratch
            .y
            .get_disjoint_mut([s, 2 + s])
            .expect("distinct rows");
        let (y0, y1) = (&mut y0[..width], &mut y1[..width]);
        for t in 0..width {
            y0[t] = q0[t] + q1[t] + q2[t];
            y1[t] = q1[t] - q2[t] - q3[t];
        }
    }
}
