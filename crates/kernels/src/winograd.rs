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
    // Each padded input plane is kept as its even and its odd columns
    // (`Split`), so that every step of the transforms reads and writes
    // contiguous runs of tiles and compiles to vector code.
    let image = d.c * d.h * d.w;
    let mut y = vec![0.0f32; d.n * d.o * p];
    y.par_chunks_mut(group * d.o * p).enumerate().for_each_init(
        || {
            (
                Split::new(d, th, tw),
                Vec::new(),
                Vec::new(),
                Scratch::new(tw, group * tiles),
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
                    input_transform(plane, (th, tw), v_c, d.c * width, scratch);
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
                // The unit's 2x2 blocks, tile by tile, into its images.
                let [y00, y01, y10, y11] = &scratch.y;
                for k in 0..count {
                    let out = &mut y_unit[(k * d.o + o) * p..(k * d.o + o + 1) * p];
                    for a in 0..th {
                        for b in 0..tw {
                            let t = k * tiles + a * tw + b;
                            let (oh, ow) = (2 * a, 2 * b);
                            let full_w = ow + 1 < d.wo;
                            out[oh * d.wo + ow] = y00[t];
                            if full_w {
                                out[oh * d.wo + ow + 1] = y01[t];
                            }
                            if oh + 1 < d.ho {
                                out[(oh + 1) * d.wo + ow] = y10[t];
                                if full_w {
                                    out[(oh + 1) * d.wo + ow + 1] = y11[t];
                                }
                            }
                        }
                    }
                }
            }
        },
    );
    y
}

/// One zero-padded input plane, `2·th + 2` rows of `2·tw + 2` columns with
/// the image at offset (ph, pw), stored as its even columns (`even`, row
/// pitch tw + 1) and its odd columns (`odd`).
struct Split {
    even: Vec<f32>,
    odd: Vec<f32>,
    half: usize,
}

impl Split {
    fn new(d: &ConvDims, th: usize, tw: usize) -> Self {
        let (rows, half) = (2 * th + 2, tw + 1);
        debug_assert!(d.h + d.ph <= rows && d.w + d.pw <= 2 * half);
        Self {
            even: vec![0.0; rows * half],
            odd: vec![0.0; rows * half],
            half,
        }
    }

    fn fill(&mut self, src: &[f32], d: &ConvDims) {
        self.even.fill(0.0);
        self.odd.fill(0.0);
        for r in 0..d.h {
            let row = (r + d.ph) * self.half;
            for (col, &value) in src[r * d.w..(r + 1) * d.w].iter().enumerate() {
                let pc = col + d.pw;
                let half = if pc.is_multiple_of(2) {
                    &mut self.even
                } else {
                    &mut self.odd
                };
                half[row + pc / 2] = value;
            }
        }
    }

    fn rows(&self, first: usize) -> ([&[f32]; 4], [&[f32]; 4]) {
        let h = self.half;
        (
            std::array::from_fn(|r| &self.even[(first + r) * h..(first + r + 1) * h]),
            std::array::from_fn(|r| &self.odd[(first + r) * h..(first + r + 1) * h]),
        )
    }
}

/// Per-thread rows for the transforms.
struct Scratch {
    /// Bᵀ applied down one band's columns: 4 rows, even and odd columns.
    even: [Vec<f32>; 4],
    odd: [Vec<f32>; 4],
    /// M A for every tile of a unit: 4 rows x 2 columns.
    ma: [[Vec<f32>; 2]; 4],
    /// The 2x2 output blocks of every tile of a unit: y00, y01, y10, y11.
    y: [Vec<f32>; 4],
}

impl Scratch {
    fn new(tw: usize, width: usize) -> Self {
        Self {
            even: std::array::from_fn(|_| vec![0.0; tw + 1]),
            odd: std::array::from_fn(|_| vec![0.0; tw + 1]),
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

/// V = Bᵀ d B for every tile of one padded plane: tile (a, b) covers rows
/// 2a..2a+4 and columns 2b..2b+4; its value ξ = 4i + j goes to
/// `v[ξ · pitch + a · tw + b]`. Band by band (one `a`), Bᵀ first down the
/// columns, then B along the rows, each a loop over contiguous tiles.
fn input_transform(
    plane: &Split,
    (th, tw): (usize, usize),
    v: &mut [f32],
    pitch: usize,
    scratch: &mut Scratch,
) {
    for a in 0..th {
        let (even, odd) = plane.rows(2 * a);
        for i in 0..4 {
            for (k, t) in scratch.even[i].iter_mut().enumerate() {
                *t = bt_row(i, even[0][k], even[1][k], even[2][k], even[3][k]);
            }
            for (k, t) in scratch.odd[i].iter_mut().enumerate() {
                *t = bt_row(i, odd[0][k], odd[1][k], odd[2][k], odd[3][k]);
            }
        }
        for i in 0..4 {
            // Tile b's four columns are even[b], odd[b], even[b+1], odd[b+1].
            let (e0, e1) = (&scratch.even[i][..tw], &scratch.even[i][1..=tw]);
            let (o0, o1) = (&scratch.odd[i][..tw], &scratch.odd[i][1..=tw]);
            for j in 0..4 {
                let dst = &mut v[(4 * i + j) * pitch + a * tw..][..tw];
                for b in 0..tw {
                    dst[b] = bt_row(j, e0[b], o0[b], e1[b], o1[b]);
                }
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
