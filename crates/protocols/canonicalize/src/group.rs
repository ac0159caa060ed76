//! The cyclic rotation groups C4 and C8 acting on square images and filters.
//!
//! Element k of C_N rotates counterclockwise by k·360/N degrees (as the
//! image is displayed, row 0 at the top). Quarter turns are exact: a
//! transpose and a flip. An eighth turn goes through bilinear
//! interpolation; element k of C8 is k/2 quarter turns after the
//! interpolated part, so the C4 inside C8 stays exact.

use burn::tensor::{Device, Int, Tensor, TensorData};

/// The group orders the protocol supports.
pub const ORDERS: [usize; 2] = [4, 8];

/// `x` rotated counterclockwise by `quarter_turns` × 90° in its last two
/// dimensions (square): exact.
pub fn rot90<const D: usize>(x: Tensor<D>, quarter_turns: usize) -> Tensor<D> {
    let (rows, cols) = (D - 2, D - 1);
    match quarter_turns % 4 {
        0 => x,
        // out[i][j] = x[j][S-1-i]
        1 => x.swap_dims(rows, cols).flip([rows]),
        2 => x.flip([rows, cols]),
        // out[i][j] = x[S-1-j][i]
        _ => x.swap_dims(rows, cols).flip([cols]),
    }
}

/// What a sample outside the source grid reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Border {
    /// The nearest edge pixel: the same as equiadapt's edge padding before
    /// it rotates and crops back (its padding covers every rotated corner).
    Clamp,
    /// Zero (a rotated filter's corners).
    Zero,
}

/// A bilinear resampling of square `in_size`² grids onto `out_size`²
/// grids: each output pixel reads four source pixels with fixed weights.
/// Output pixel (i, j), centred at (y, x) = (i, j) − (out−1)/2, reads the
/// source at (in−1)/2 + scale · R(θ)⁻¹ (y, x): a rotation by θ about the
/// centre, then a centred crop and resize when `scale` ≠ 1 (align_corners
/// false, as torchvision's Resize).
#[derive(Debug, Clone)]
pub struct Sampler {
    in_size: usize,
    out_size: usize,
    border: Border,
    /// Four taps per output pixel: source index (in_size² = the zero
    /// column under [`Border::Zero`]) and weight.
    index: [Vec<i64>; 4],
    weight: [Vec<f32>; 4],
}

impl Sampler {
    pub fn new(in_size: usize, out_size: usize, degrees: f64, scale: f64, border: Border) -> Self {
        let (sin, cos) = degrees.to_radians().sin_cos();
        let (ci, co) = ((in_size as f64 - 1.0) / 2.0, (out_size as f64 - 1.0) / 2.0);
        let last = in_size as i64 - 1;
        let zero = (in_size * in_size) as i64;
        // Integer positions (quarter turns, integer crops) land exactly on
        // a pixel, with weights exactly 1 and 0.
        let snap = |v: f64| {
            if (v - v.round()).abs() < 1e-9 {
                v.round()
            } else {
                v
            }
        };
        let n = out_size * out_size;
        let mut index: [Vec<i64>; 4] = std::array::from_fn(|_| Vec::with_capacity(n));
        let mut weight: [Vec<f32>; 4] = std::array::from_fn(|_| Vec::with_capacity(n));
        for i in 0..out_size {
            for j in 0..out_size {
                let (y, x) = (i as f64 - co, j as f64 - co);
                let mut r = snap(ci + scale * (y * cos + x * sin));
                let mut c = snap(ci + scale * (x * cos - y * sin));
                if border == Border::Clamp {
                    r = r.clamp(0.0, last as f64);
                    c = c.clamp(0.0, last as f64);
                }
                let (r0, c0) = (r.floor(), c.floor());
                let (fr, fc) = (r - r0, c - c0);
                let (r0, c0) = (r0 as i64, c0 as i64);
                let taps = [
                    (r0, c0, (1.0 - fr) * (1.0 - fc)),
                    (r0, c0 + 1, (1.0 - fr) * fc),
                    (r0 + 1, c0, fr * (1.0 - fc)),
                    (r0 + 1, c0 + 1, fr * fc),
                ];
                for (t, &(tr, tc, w)) in taps.iter().enumerate() {
                    let inside = (0..=last).contains(&tr) && (0..=last).contains(&tc);
                    let (idx, w) = if inside {
                        (tr * in_size as i64 + tc, w)
                    } else {
                        // Outside the grid: a clamped position steps out
                        // only with weight 0; a zero border reads zero.
                        (if border == Border::Zero { zero } else { 0 }, 0.0)
                    };
                    index[t].push(idx);
                    weight[t].push(w as f32);
                }
            }
        }
        Self {
            in_size,
            out_size,
            border,
            index,
            weight,
        }
    }

    /// `x` resampled in its last two dimensions (`in_size`² → `out_size`²).
    pub fn apply<const D: usize>(&self, x: Tensor<D>) -> Tensor<D> {
        let dims = x.dims();
        assert_eq!(
            [dims[D - 2], dims[D - 1]],
            [self.in_size, self.in_size],
            "sampler built for {0}x{0} grids",
            self.in_size
        );
        let device = x.device();
        let rows: usize = dims[..D - 2].iter().product();
        let mut flat: Tensor<2> = x.reshape([rows, self.in_size * self.in_size]);
        if self.border == Border::Zero {
            let zeros = Tensor::<2>::zeros([rows, 1], &device);
            flat = Tensor::cat(vec![flat, zeros], 1);
        }
        let n = self.out_size * self.out_size;
        let mut out: Option<Tensor<2>> = None;
        for t in 0..4 {
            let index =
                Tensor::<1, Int>::from_data(TensorData::new(self.index[t].clone(), [n]), &device);
            let weight = weights(&self.weight[t], &device);
            let tap = flat.clone().select(1, index) * weight;
            out = Some(match out {
                None => tap,
                Some(o) => o + tap,
            });
        }
        let mut shape = dims;
        shape[D - 2] = self.out_size;
        shape[D - 1] = self.out_size;
        out.expect("four taps").reshape(shape)
    }
}

fn weights(w: &[f32], device: &Device) -> Tensor<2> {
    Tensor::from_data(TensorData::new(w.to_vec(), [1, w.len()]), device)
}

/// Rotations of square `size`² grids by the elements of C_N.
#[derive(Debug, Clone)]
pub struct Rotator {
    pub order: usize,
    /// C8: what even elements apply before their quarter turns (none for
    /// images; −22.5° for filters)...
    even: Option<Sampler>,
    /// ...and odd ones (45° for images; +22.5° for filters).
    odd: Option<Sampler>,
}

impl Rotator {
    /// Rotations of images: element k is k/2 quarter turns after k mod 2
    /// eighth turns. Panics on an order other than 4 or 8 (configs are
    /// validated first).
    pub fn new(order: usize, size: usize, border: Border) -> Self {
        assert!(ORDERS.contains(&order), "C{order} is not supported");
        Self {
            order,
            even: None,
            odd: (order == 8).then(|| Sampler::new(size, size, 45.0, 1.0, border)),
        }
    }

    /// Rotations of `size`² filters (zero outside). Under C8 every filter
    /// is interpolated once: even elements at −22.5°, odd ones at +22.5°,
    /// then quarter turns. Each then carries the same interpolation blur,
    /// where rotating only the odd ones would leave them blurred and the
    /// even ones sharp (a pattern that an eighth turn of the input moves,
    /// and the scores would follow). Quarter turns stay exact.
    pub fn for_filters(order: usize, size: usize) -> Self {
        assert!(ORDERS.contains(&order), "C{order} is not supported");
        let half = |deg| (order == 8).then(|| Sampler::new(size, size, deg, 1.0, Border::Zero));
        Self {
            order,
            even: half(-22.5),
            odd: half(22.5),
        }
    }

    /// `x` rotated by element `k` (k · 360/N degrees counterclockwise).
    pub fn rotate<const D: usize>(&self, x: Tensor<D>, k: usize) -> Tensor<D> {
        let k = k % self.order;
        if self.order == 4 {
            return rot90(x, k);
        }
        let first = if k % 2 == 1 { &self.odd } else { &self.even };
        let x = match first {
            Some(s) => s.apply(x),
            None => x,
        };
        rot90(x, k / 2)
    }

    /// Σ_g w[:, g] · (g or g⁻¹)x for a batch `[B, C, H, W]` and weights
    /// `[B, N]`: with one-hot weights, each image rotated by its own
    /// element, exactly.
    pub fn mix(&self, x: Tensor<4>, w: Tensor<2>, inverse: bool) -> Tensor<4> {
        let [b, n] = w.dims();
        let copies: Vec<Tensor<4>> = (0..n)
            .map(|g| self.rotate(x.clone(), if inverse { self.inverse(g) } else { g }))
            .collect();
        let w = w.swap_dims(0, 1).reshape([n, b, 1, 1, 1]);
        (Tensor::<4>::stack::<5>(copies, 0) * w)
            .sum_dim(0)
            .squeeze_dim::<4>(0)
    }

    /// The inverse of element `k`.
    pub fn inverse(&self, k: usize) -> usize {
        (self.order - k % self.order) % self.order
    }

    /// Degrees of element `k`.
    pub fn degrees(&self, k: usize) -> f64 {
        (k % self.order) as f64 * 360.0 / self.order as f64
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_util::values;
    use reusebench_core::device::DeviceSpec;

    fn grid(size: usize, device: &Device) -> Tensor<3> {
        let v: Vec<f32> = (0..size * size).map(|i| i as f32).collect();
        Tensor::from_data(TensorData::new(v, [1, size, size]), device)
    }

    #[test]
    fn a_quarter_turn_is_counterclockwise_and_four_are_the_identity() {
        let device = DeviceSpec::for_tests();
        // [[0, 1], [2, 3]] turned counterclockwise: [[1, 3], [0, 2]].
        assert_eq!(values(rot90(grid(2, &device), 1)), vec![1.0, 3.0, 0.0, 2.0]);
        let x = grid(5, &device);
        for k in 0..4 {
            let back = rot90(rot90(x.clone(), k), 4 - k);
            assert_eq!(values(back), values(x.clone()));
        }
        assert_eq!(values(rot90(x.clone(), 3)), values(rot90(rot90(x, 1), 2)));
    }

    #[test]
    fn the_sampler_at_a_quarter_turn_is_the_exact_rotation() {
        let device = DeviceSpec::for_tests();
        let x = grid(6, &device);
        for border in [Border::Clamp, Border::Zero] {
            let s = Sampler::new(6, 6, 90.0, 1.0, border);
            assert_eq!(values(s.apply(x.clone())), values(rot90(x.clone(), 1)));
        }
        let identity = Sampler::new(6, 6, 0.0, 1.0, Border::Zero);
        assert_eq!(values(identity.apply(x.clone())), values(x));
    }

    #[test]
    fn two_eighth_turns_approximate_a_quarter_turn() {
        let device = DeviceSpec::for_tests();
        // A smooth image: bilinear interpolation is close to exact on it.
        let size = 16;
        let c = (size as f32 - 1.0) / 2.0;
        let v: Vec<f32> = (0..size * size)
            .map(|i| {
                let (y, x) = ((i / size) as f32 - c, (i % size) as f32 - c);
                (-(x * x + 0.5 * y * y) / 20.0).exp() + 0.02 * x
            })
            .collect();
        let x: Tensor<3> = Tensor::from_data(TensorData::new(v, [1, size, size]), &device);
        let s = Sampler::new(size, size, 45.0, 1.0, Border::Zero);
        let twice = values(s.apply(s.apply(x.clone())));
        let exact = values(rot90(x, 1));
        // Compare the inner disc (corners leave the grid).
        let mut worst = 0f32;
        for i in 0..size {
            for j in 0..size {
                let (y, x) = (i as f32 - c, j as f32 - c);
                if x * x + y * y < (c - 2.0) * (c - 2.0) {
                    worst = worst.max((twice[i * size + j] - exact[i * size + j]).abs());
                }
            }
        }
        assert!(worst < 0.05, "two eighth turns vs a quarter turn: {worst}");
    }

    #[test]
    fn a_centred_crop_and_resize_commutes_with_quarter_turns() {
        let device = DeviceSpec::for_tests();
        let x = grid(10, &device);
        let s = Sampler::new(10, 6, 0.0, 8.0 / 6.0, Border::Clamp);
        let a = values(s.apply(rot90(x.clone(), 1)));
        let b = values(rot90(s.apply(x), 1));
        for (a, b) in a.iter().zip(&b) {
            assert!((a - b).abs() < 1e-4, "{a} vs {b}");
        }
    }
}
