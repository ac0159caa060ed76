//! 3x3 stride-1 convolution by Winograd's minimal filtering: forward and
//! input gradient by F(2x2, 3x3), weight gradient by F(3x3, 2x2) (Lavin &
//! Gray, "Fast Algorithms for Convolutional Neural Networks", 2016).
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

use std::cell::RefCell;
use std::sync::Mutex;

use rayon::prelude::*;

use crate::gemm::{MatRef, matmul};
use crate::layout::{ConvDims, transpose};

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

/// `U[c][ξ][o]` = (G g Gᵀ)ξ for the kernel `g` = `w[o, c]`, with
/// G = [[1, 0, 0], [½, ½, ½], [½, −½, ½], [0, 0, 1]]. The product for ξ
/// reads `U_ξ` as a row-major `[C, O]` matrix with row stride 16·O (a
/// column stride instead made the GEMM's packing a fifth of the step).
/// Input channels in parallel; a thread's reads of `w` for neighbouring
/// channels share cache lines.
fn kernel_transform(w: &[f32], d: &ConvDims) -> Vec<f32> {
    let (c_n, o_n) = (d.c, d.o);
    let g_rows = |g: [f32; 3]| {
        [
            g[0],
            0.5 * (g[0] + g[1] + g[2]),
            0.5 * (g[0] - g[1] + g[2]),
            g[2],
        ]
    };
    let mut u = KEPT_KERNEL.take(16 * c_n * o_n);
    u[..16 * c_n * o_n]
        .par_chunks_mut(16 * o_n)
        .enumerate()
        .for_each(|(c, u_c)| {
            for o in 0..o_n {
                let g = &w[(o * c_n + c) * 9..][..9];
                // G g: 4x3, column by column.
                let cols: [[f32; 4]; 3] =
                    std::array::from_fn(|j| g_rows([g[j], g[3 + j], g[6 + j]]));
                for a in 0..4 {
                    // (G g) Gᵀ: row a of G g, transformed the same way.
                    let row = g_rows([cols[0][a], cols[1][a], cols[2][a]]);
                    for (b, v) in row.into_iter().enumerate() {
                        u_c[(a * 4 + b) * o_n + o] = v;
                    }
                }
            }
        });
    u
}

/// `y[n] = conv(x[n], w)` for every image into a contiguous `[N, O, Ho, Wo]`
/// buffer, as `conv2d::forward_images` does by im2col.
///
/// Channels last inside: each image is transposed to `[H, W, C]` and
/// padded, so every step of both transforms is a loop over channels (64 to
/// 512 contiguous values) whatever the image size; the products are
/// M_ξ `[tiles, O]` = V_ξ `[tiles, C]` · U_ξ `[C, O]`, and each output image
/// is assembled as `[Ho, Wo, O]` and transposed back. (Loops over the tiles
/// of a plane instead were 2-4 long in late layers, and spent their time in
/// loop overhead.)
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
    let (rows_p, cols_p) = (2 * th + 2, 2 * tw + 2);
    let image = d.c * d.h * d.w;
    let mut y = vec![0.0f32; d.n * d.o * p];
    y.par_chunks_mut(group * d.o * p)
        .enumerate()
        .for_each(|(unit, y_unit)| {
            with_buffers(d, rows_p * cols_p, group * tiles, |buf| {
                let first = unit * group;
                let count = y_unit.len() / (d.o * p);
                let width = count * tiles;
                let Buffers {
                    hwc,
                    padded,
                    v,
                    tile,
                    ..
                } = &mut *buf;
                let blocks = per_image(&mut v[..16 * width * d.c], tiles * d.c, count);
                for (k, mut v_k) in blocks.into_iter().enumerate() {
                    let x_n = &x[(first + k) * image..(first + k + 1) * image];
                    pad_channels_last(x_n, d, cols_p, hwc, padded);
                    input_transform(padded, tile, d.c, (th, tw), cols_p, &mut v_k);
                }
                for xi in 0..16 {
                    matmul(
                        &mut buf.m[xi * width * d.o..(xi + 1) * width * d.o],
                        d.o,
                        false,
                        MatRef::row_major(&buf.v[xi * width * d.c..(xi + 1) * width * d.c], d.c),
                        MatRef {
                            data: &u[xi * d.o..],
                            rs: 16 * d.o,
                            cs: 1,
                        },
                        [width, d.o, d.c],
                    );
                }
                for k in 0..count {
                    output_transform(buf, d.o, (th, tw), (d.ho, d.wo), k * tiles, width);
                    let y_k = &mut y_unit[k * d.o * p..(k + 1) * d.o * p];
                    transpose(&buf.out, p, d.o, y_k);
                }
            });
        });
    KEPT_KERNEL.put(u);
    y
}

/// A large buffer of one call kept for the next: reused, it is neither
/// page-faulted nor zeroed afresh (V and E of a width-64 layer-1 weight
/// gradient are 16 MB each). Every user overwrites all it reads. A call
/// that finds it taken (another thread inside the same function) gets a new
/// one.
struct Kept(Mutex<Vec<f32>>);

impl Kept {
    const fn new() -> Self {
        Self(Mutex::new(Vec::new()))
    }

    /// The kept buffer, at least `len` long: callers slice what they use.
    /// (Never shrunk, so that growing it back neither copies nor zeroes.)
    fn take(&self, len: usize) -> Vec<f32> {
        let mut buf = self
            .0
            .lock()
            .map(|mut kept| std::mem::take(&mut *kept))
            .unwrap_or_default();
        if buf.len() < len {
            buf.resize(len, 0.0);
        }
        buf
    }

    fn put(&self, buf: Vec<f32>) {
        if let Ok(mut kept) = self.0.lock() {
            *kept = buf;
        }
    }
}

static KEPT_KERNEL: Kept = Kept::new();
static KEPT_V: Kept = Kept::new();
static KEPT_E: Kept = Kept::new();
static KEPT_PRODUCT: Kept = Kept::new();

/// Per-thread buffers of the transforms, kept between calls: made afresh
/// for every call they cost ~4 % of a width-64 train step in zeroing.
#[derive(Default)]
struct Buffers {
    /// One image, `[H, W, C]`.
    hwc: Vec<f32>,
    /// The same, zero-padded: `[2·th + 2, 2·tw + 2, C]`, image at (ph, pw).
    padded: Vec<f32>,
    /// The geometry `padded`'s zero border was laid out for.
    padded_for: Option<[usize; 5]>,
    /// V `[16][tiles of the unit][C]`.
    v: Vec<f32>,
    /// M `[16][tiles of the unit][O]`.
    m: Vec<f32>,
    /// Bᵀ down one tile's columns, `[4 rows i][4 columns][C]`; then M A,
    /// `[4 rows][2 columns][O]`.
    tile: Vec<f32>,
    /// One output image, `[Ho, Wo, O]` (the output gradient, in `weight_grad`).
    out: Vec<f32>,
}

thread_local! {
    static BUFFERS: RefCell<Buffers> = RefCell::new(Buffers::default());
}

/// Frees every kept buffer: the shared ones and each rayon thread's own
/// (and the calling thread's). What one cell sized them for need not be
/// what the next one needs; they grow back on the next call.
pub(crate) fn release_buffers() {
    for kept in [&KEPT_KERNEL, &KEPT_V, &KEPT_E, &KEPT_PRODUCT] {
        kept.put(Vec::new());
    }
    let clear = || BUFFERS.with_borrow_mut(|buf| *buf = Buffers::default());
    rayon::broadcast(|_| clear());
    clear();
}

/// Runs `f` with this thread's buffers, large enough for `d` and units of
/// `max_tiles` tiles. `f` must not call into rayon (it would let this
/// thread start another job that wants the same buffers).
fn with_buffers<R>(
    d: &ConvDims,
    padded_pixels: usize,
    max_tiles: usize,
    f: impl FnOnce(&mut Buffers) -> R,
) -> R {
    BUFFERS.with_borrow_mut(|buf| {
        let grow = |v: &mut Vec<f32>, len: usize| {
            if v.len() < len {
                v.resize(len, 0.0);
            }
        };
        grow(&mut buf.hwc, d.h * d.w * d.c);
        grow(&mut buf.v, 16 * max_tiles * d.c);
        grow(&mut buf.m, 16 * max_tiles * d.o);
        grow(&mut buf.tile, 16 * d.c.max(d.o));
        grow(&mut buf.out, d.ho * d.wo * d.o);
        let geometry = [d.c, d.h, d.w, d.ph, d.pw];
        if buf.padded_for != Some(geometry) {
            buf.padded.clear();
            buf.padded.resize(padded_pixels * d.c, 0.0);
            buf.padded_for = Some(geometry);
        }
        f(buf)
    })
}

/// `padded` = image `x_n` (`[C, H, W]`) channels last, zero-padded, through
/// `hwc`. The border is zeroed when the buffer is laid out for a geometry
/// and never written: every image of that geometry overwrites the same
/// interior.
fn pad_channels_last(
    x_n: &[f32],
    d: &ConvDims,
    cols_p: usize,
    hwc: &mut [f32],
    padded: &mut [f32],
) {
    transpose(x_n, d.c, d.h * d.w, hwc);
    let row = d.w * d.c;
    for r in 0..d.h {
        let at = ((r + d.ph) * cols_p + d.pw) * d.c;
        padded[at..at + row].copy_from_slice(&hwc[r * row..(r + 1) * row]);
    }
}

/// Cuts `[16][count · per_image]` into each image's 16 blocks of
/// `per_image` values, so that images can be transformed independently.
fn per_image(buf: &mut [f32], per_image: usize, count: usize) -> Vec<[&mut [f32]; 16]> {
    let mut by_xi: Vec<_> = buf
        .chunks_mut(count * per_image)
        .map(|block| block.chunks_mut(per_image))
        .collect();
    assert_eq!(by_xi.len(), 16, "winograd: 16 blocks expected");
    (0..count)
        .map(|_| std::array::from_fn(|xi| by_xi[xi].next().expect("one block per image")))
        .collect()
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

/// V = Bᵀ d B for every tile of one padded channels-last image: tile
/// (a, b) reads padded pixels (2a + r, 2b + s), r, s < 4; its value
/// ξ = 4i + j goes to `v[ξ][(a·tw + b)·C..][..C]`.
fn input_transform(
    padded: &[f32],
    tile: &mut [f32],
    c_n: usize,
    (th, tw): (usize, usize),
    cols_p: usize,
    v: &mut [&mut [f32]; 16],
) {
    for a in 0..th {
        for b in 0..tw {
            let pixel = |r: usize, s: usize| {
                let at = ((2 * a + r) * cols_p + 2 * b + s) * c_n;
                &padded[at..at + c_n]
            };
            // Bᵀ down each of the four columns s: tile[i][s][..C].
            for s in 0..4 {
                let [d0, d1, d2, d3] = std::array::from_fn(|r| pixel(r, s));
                for i in 0..4 {
                    let out = &mut tile[(i * 4 + s) * c_n..][..c_n];
                    for c in 0..c_n {
                        out[c] = bt_row(i, d0[c], d1[c], d2[c], d3[c]);
                    }
                }
            }
            // B along each row i, into V.
            let t = a * tw + b;
            for i in 0..4 {
                let [q0, q1, q2, q3] = std::array::from_fn(|s| &tile[(i * 4 + s) * c_n..][..c_n]);
                for j in 0..4 {
                    let dst = &mut v[4 * i + j][t * c_n..][..c_n];
                    for c in 0..c_n {
                        dst[c] = bt_row(j, q0[c], q1[c], q2[c], q3[c]);
                    }
                }
            }
        }
    }
}

/// Y = Aᵀ M A for the tiles of one image (`first..first + th·tw` of the
/// unit), into `buf.out` (`[Ho, Wo, O]`), where inside. A along the rows,
/// then Aᵀ down the columns, each a loop over output channels.
fn output_transform(
    buf: &mut Buffers,
    o_n: usize,
    (th, tw): (usize, usize),
    (ho, wo): (usize, usize),
    first: usize,
    width: usize,
) {
    let Buffers { m, tile, out, .. } = buf;
    for a in 0..th {
        for b in 0..tw {
            let t = first + a * tw + b;
            let m_xi = |xi: usize| &m[(xi * width + t) * o_n..][..o_n];
            // M A: tile[i][s][..O] for rows i, output columns s.
            for i in 0..4 {
                let [q0, q1, q2, q3] = std::array::from_fn(|j| m_xi(4 * i + j));
                let (left, right) = tile[i * 2 * o_n..(i + 1) * 2 * o_n].split_at_mut(o_n);
                for o in 0..o_n {
                    left[o] = q0[o] + q1[o] + q2[o];
                    right[o] = q1[o] - q2[o] - q3[o];
                }
            }
            for s in 0..2 {
                let [q0, q1, q2, q3] = std::array::from_fn(|i| &tile[(i * 2 + s) * o_n..][..o_n]);
                let ow = 2 * b + s;
                if ow >= wo {
                    continue;
                }
                let top = &mut out[((2 * a) * wo + ow) * o_n..][..o_n];
                for o in 0..o_n {
                    top[o] = q0[o] + q1[o] + q2[o];
                }
                if 2 * a + 1 < ho {
                    let bottom = &mut out[((2 * a + 1) * wo + ow) * o_n..][..o_n];
                    for o in 0..o_n {
                        bottom[o] = q1[o] - q2[o] - q3[o];
                    }
                }
            }
        }
    }
}

/// Values of V (or of E) per chunk of the batch in `weight_grad`: 16 MB.
const GRAD_CHUNK_VALUES: usize = 1 << 22;

/// Weight gradient `[O, C, 3, 3]` by F(3x3, 2x2): per tile, the 3x3
/// correlation of the 4x4 input tile d with the 2x2 output-gradient tile e
/// is Aᵀ [(G e Gᵀ) ⊙ (Bᵀ d B)] A, with
/// Bᵀ = [[1, 0, −1, 0], [0, 1, 1, 0], [0, −1, 1, 0], [0, −1, 0, 1]],
/// G = [[1, 0], [½, ½], [½, −½], [0, 1]], Aᵀ = [[1, 1, 1, 0], [0, 1, −1, 0],
/// [0, 1, 1, 1]]. This Bᵀ is the forward's with its last row negated, so V
/// is the forward's transform and the signs go into E. Summed over tiles,
/// P_ξ `[O, C]` = E_ξᵀ · V_ξ is one product per ξ, 2.25x fewer multiply-adds
/// than the im2col product.
///
/// The batch goes in chunks of whole images (fixed by the shape); each P_ξ
/// is one thread's, summing the chunks in order, so the result does not
/// depend on the number of threads.
pub(crate) fn weight_grad(x: &[f32], dy: &[f32], d: &ConvDims) -> Vec<f32> {
    weight_grad_in_chunks(x, dy, d, GRAD_CHUNK_VALUES)
}

/// `weight_grad` with chunks of at most `chunk_values` values of V or E
/// (at least one image).
fn weight_grad_in_chunks(x: &[f32], dy: &[f32], d: &ConvDims, chunk_values: usize) -> Vec<f32> {
    debug_assert!(applies(d));
    let (th, tw) = (d.ho.div_ceil(2), d.wo.div_ceil(2));
    let (tiles, p) = (th * tw, d.ho * d.wo);
    let (rows_p, cols_p) = (2 * th + 2, 2 * tw + 2);
    let image = d.c * d.h * d.w;
    let chunk = (chunk_values / (16 * d.c.max(d.o)) / tiles).clamp(1, d.n.max(1));
    let mut prod = KEPT_PRODUCT.take(16 * d.o * d.c);
    let (mut v, mut e) = (KEPT_V.take(0), KEPT_E.take(0));
    for (index, first) in (0..d.n).step_by(chunk).enumerate() {
        let count = chunk.min(d.n - first);
        let width = count * tiles;
        for (buf, len) in [(&mut v, 16 * width * d.c), (&mut e, 16 * width * d.o)] {
            if buf.len() < len {
                buf.resize(len, 0.0);
            }
        }
        let v_blocks = per_image(&mut v[..16 * width * d.c], tiles * d.c, count);
        let e_blocks = per_image(&mut e[..16 * width * d.o], tiles * d.o, count);
        v_blocks
            .into_par_iter()
            .zip(e_blocks)
            .enumerate()
            .for_each(|(k, (mut v_k, mut e_k))| {
                with_buffers(d, rows_p * cols_p, 0, |buf| {
                    let n = first + k;
                    let Buffers {
                        hwc,
                        padded,
                        tile,
                        out,
                        ..
                    } = buf;
                    pad_channels_last(&x[n * image..(n + 1) * image], d, cols_p, hwc, padded);
                    input_transform(padded, tile, d.c, (th, tw), cols_p, &mut v_k);
                    transpose(&dy[n * d.o * p..(n + 1) * d.o * p], d.o, p, out);
                    grad_transform(out, tile, d.o, (th, tw), (d.ho, d.wo), &mut e_k);
                });
            });
        prod[..16 * d.o * d.c]
            .par_chunks_mut(d.o * d.c)
            .enumerate()
            .for_each(|(xi, p_xi)| {
                matmul(
                    p_xi,
                    d.c,
                    index > 0,
                    MatRef::row_major(&e[xi * width * d.o..(xi + 1) * width * d.o], d.o)
                        .transposed(),
                    MatRef::row_major(&v[xi * width * d.c..(xi + 1) * width * d.c], d.c),
                    [d.o, d.c, width],
                );
            });
    }
    let mut dw = vec![0.0f32; d.o * d.c * 9];
    dw.par_chunks_mut(d.c * 9)
        .enumerate()
        .for_each(|(o, dw_o)| {
            let rows: [&[f32]; 16] = std::array::from_fn(|xi| &prod[(xi * d.o + o) * d.c..][..d.c]);
            for (c, dw_oc) in dw_o.chunks_exact_mut(9).enumerate() {
                let m: [f32; 16] = std::array::from_fn(|xi| rows[xi][c]);
                // Aᵀ along each row's four values, then down the columns.
                let at3 = |q: [f32; 4]| [q[0] + q[1] + q[2], q[1] - q[2], q[1] + q[2] + q[3]];
                let q: [[f32; 3]; 4] = std::array::from_fn(|i| {
                    at3([m[4 * i], m[4 * i + 1], m[4 * i + 2], m[4 * i + 3]])
                });
                for j in 0..3 {
                    let col = at3([q[0][j], q[1][j], q[2][j], q[3][j]]);
                    for i in 0..3 {
                        dw_oc[i * 3 + j] = col[i];
                    }
                }
            }
        });
    KEPT_PRODUCT.put(prod);
    KEPT_V.put(v);
    KEPT_E.put(e);
    dw
}

/// E = S (G e Gᵀ) S for every 2x2 tile e of one channels-last output
/// gradient `dy_hwc` (`[Ho, Wo, O]`, zero beyond its edge), S = diag(1, 1,
/// 1, −1): value ξ = 4i + j of tile (a, b) goes to `e[ξ][(a·tw + b)·O..]`.
fn grad_transform(
    dy_hwc: &[f32],
    tile: &mut [f32],
    o_n: usize,
    (th, tw): (usize, usize),
    (ho, wo): (usize, usize),
    e: &mut [&mut [f32]; 16],
) {
    let sign = |i: usize| if i == 3 { -1.0f32 } else { 1.0 };
    for a in 0..th {
        for b in 0..tw {
            // G down each of the tile's two columns v: tile[r][v][..O].
            for v in 0..2 {
                let ow = 2 * b + v;
                let row = |u: usize| {
                    let oh = 2 * a + u;
                    (oh < ho && ow < wo).then(|| &dy_hwc[(oh * wo + ow) * o_n..][..o_n])
                };
                let (e0, e1) = (row(0), row(1));
                for o in 0..o_n {
                    let (x0, x1) = (e0.map_or(0.0, |r| r[o]), e1.map_or(0.0, |r| r[o]));
                    tile[v * o_n + o] = x0;
                    tile[(2 + v) * o_n + o] = 0.5 * (x0 + x1);
                    tile[(4 + v) * o_n + o] = 0.5 * (x0 - x1);
                    tile[(6 + v) * o_n + o] = x1;
                }
            }
            // G along each row r, with the signs.
            let t = a * tw + b;
            for r in 0..4 {
                let (g0, g1) = (
                    &tile[2 * r * o_n..][..o_n],
                    &tile[(2 * r + 1) * o_n..][..o_n],
                );
                let [d0, d1, d2, d3] = e
                    .get_disjoint_mut([4 * r, 4 * r + 1, 4 * r + 2, 4 * r + 3])
                    .expect("distinct blocks");
                let (d0, d1) = (&mut d0[t * o_n..][..o_n], &mut d1[t * o_n..][..o_n]);
                let (d2, d3) = (&mut d2[t * o_n..][..o_n], &mut d3[t * o_n..][..o_n]);
                let s = sign(r);
                for o in 0..o_n {
                    d0[o] = s * g0[o];
                    d1[o] = s * 0.5 * (g0[o] + g1[o]);
                    d2[o] = s * 0.5 * (g0[o] - g1[o]);
                    d3[o] = -s * g1[o];
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn weight_gradient_summed_over_chunks_matches_one_chunk() {
        let d = ConvDims::new([5, 64, 6, 7], [64, 64, 3, 3], [1, 1], [1, 1]);
        let values = |len: usize, seed: usize| -> Vec<f32> {
            (0..len)
                .map(|i| (((i * 7919 + seed) % 211) as f32 - 105.0) / 50.0)
                .collect()
        };
        let x = values(d.n * d.c * d.h * d.w, 1);
        let dy = values(d.n * d.o * d.ho * d.wo, 2);
        let whole = weight_grad_in_chunks(&x, &dy, &d, usize::MAX);
        // One image per chunk: five products accumulated in order.
        let chunked = weight_grad_in_chunks(&x, &dy, &d, 1);
        let scale = whole.iter().fold(1.0f32, |m, v| m.max(v.abs()));
        for (a, b) in whole.iter().zip(&chunked) {
            assert!((a - b).abs() <= 1e-4 * scale, "{a} vs {b}");
        }
    }
}
