//! A steerable filter basis, as e2cnn's `R2Conv` builds its filters:
//! Gaussian rings times circular harmonics, sampled on the k×k grid. A
//! filter is a weighted sum of the basis functions; the filter turned by
//! any angle is the same sum of the functions turned by that angle, sampled
//! on the same grid. So every element of C8 gets an exactly turned filter,
//! where turning a k×k array of pixels by 45° must interpolate.
//!
//! Element k of C_N turns counterclockwise by k·360/N degrees as displayed
//! (row 0 at the top), as [`crate::group`]. Quarter turns of the sampled
//! functions are taken by permuting pixels ([`crate::group::rot90`]'s
//! convention), so the C4 inside C8 stays exact to the bit, as with turned
//! pixel filters.

use burn::tensor::{Device, Tensor, TensorData};
use serde::{Deserialize, Serialize};

/// Which rings and harmonics make up the basis.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum BasisKind {
    /// e2cnn's `R2Conv` defaults: rings at radii 0..(k − 1)/2 with Gaussian
    /// profiles of width 0.005 px at the centre (one pixel), 0.6 between
    /// and 0.4 on the outer ring; harmonics up to its default cutoff: none
    /// at the centre, min(2r, 2r − (r + 1) mod 2) inside, 2 on the outer
    /// ring (11 functions at k = 5).
    #[default]
    E2cnn,
    /// Width 0.6 on every ring and harmonics up to 2r, at most 4 (15
    /// functions at k = 5): the basis before 2026-12-07.
    Wide,
}

/// The basis sampled for every element of C_N.
#[derive(Debug, Clone)]
pub struct SteerableBasis {
    pub order: usize,
    /// Pixels a side of a filter.
    pub size: usize,
    /// Number of basis functions.
    pub len: usize,
    /// Per element g: `[len, size²]`, the functions turned by g, row-major.
    turned: Vec<Vec<f32>>,
}

/// (ring radius, profile width, frequency, sine part) of each basis
/// function.
fn functions(size: usize, kind: BasisKind) -> Vec<(usize, f64, usize, bool)> {
    let max_radius = (size - 1) / 2;
    let mut out = Vec::new();
    for r in 0..=max_radius {
        let (sigma, max_freq) = match kind {
            BasisKind::E2cnn => {
                let sigma = match r {
                    0 => 0.005,
                    _ if r == max_radius => 0.4,
                    _ => 0.6,
                };
                let max_freq = match r {
                    0 => 0,
                    _ if r == max_radius => (2 * r).min(2),
                    _ => (2 * r).min(2 * r - (r + 1) % 2),
                };
                (sigma, max_freq)
            }
            // A ring of radius r holds about 2πr samples; frequency 2r (at
            // most 4) stays below their Nyquist rate.
            BasisKind::Wide => (0.6, (2 * r).min(4)),
        };
        for m in 0..=max_freq {
            out.push((r, sigma, m, false));
            if m > 0 {
                out.push((r, sigma, m, true));
            }
        }
    }
    out
}

/// The functions turned counterclockwise by `degrees`, sampled: `[len,
/// size²]`, each scaled by `norms` (unit L2 norm at 0°).
fn sample(
    size: usize,
    kind: BasisKind,
    degrees: f64,
    norms: Option<&[f64]>,
) -> (Vec<f64>, Vec<f64>) {
    let fs = functions(size, kind);
    let c = (size as f64 - 1.0) / 2.0;
    let alpha = degrees.to_radians();
    let mut values = vec![0.0f64; fs.len() * size * size];
    for (f, &(r, sigma, m, sine)) in fs.iter().enumerate() {
        for i in 0..size {
            for j in 0..size {
                let (x, y) = (j as f64 - c, c - i as f64);
                let rho = x.hypot(y);
                let ring = (-(rho - r as f64).powi(2) / (2.0 * sigma * sigma)).exp();
                // The turned function at p is the function at R(−α)·p.
                let angle = m as f64 * (y.atan2(x) - alpha);
                let harmonic = match (m, sine) {
                    (0, _) => 1.0,
                    // The centre has no direction: a harmonic vanishes there.
                    _ if rho < 1e-9 => 0.0,
                    (_, false) => angle.cos(),
                    (_, true) => angle.sin(),
                };
                values[(f * size + i) * size + j] = ring * harmonic;
            }
        }
    }
    let norms = match norms {
        Some(n) => n.to_vec(),
        None => values
            .chunks(size * size)
            .map(|v| v.iter().map(|x| x * x).sum::<f64>().sqrt())
            .collect(),
    };
    for (v, n) in values.chunks_mut(size * size).zip(&norms) {
        v.iter_mut().for_each(|x| *x /= n);
    }
    (values, norms)
}

/// `values` (`[len, size²]`) turned by one quarter turn, pixel for pixel.
fn quarter_turn(values: &[f32], size: usize) -> Vec<f32> {
    let mut out = vec![0.0f32; values.len()];
    for (src, dst) in values.chunks(size * size).zip(out.chunks_mut(size * size)) {
        for i in 0..size {
            for j in 0..size {
                // rot90: out[i][j] = x[j][S-1-i].
                dst[i * size + j] = src[j * size + (size - 1 - i)];
            }
        }
    }
    out
}

impl SteerableBasis {
    /// Panics unless `order` is 4 or 8 and `size` is odd (configs are
    /// validated first).
    pub fn new(order: usize, size: usize, kind: BasisKind) -> Self {
        assert!(
            crate::group::ORDERS.contains(&order),
            "C{order} is not supported"
        );
        assert!(
            size % 2 == 1,
            "a steerable filter needs an odd size, got {size}"
        );
        let (upright, norms) = sample(size, kind, 0.0, None);
        let to_f32 = |v: Vec<f64>| v.into_iter().map(|x| x as f32).collect::<Vec<f32>>();
        let first = to_f32(upright);
        // C8's odd elements: 45° sampled from the functions themselves.
        let eighth = (order == 8).then(|| to_f32(sample(size, kind, 45.0, Some(&norms)).0));
        let per_quarter = order / 4;
        let turned = (0..order)
            .map(|g| {
                let mut v = match (g % per_quarter, &eighth) {
                    (1, Some(e)) => e.clone(),
                    _ => first.clone(),
                };
                for _ in 0..g / per_quarter {
                    v = quarter_turn(&v, size);
                }
                v
            })
            .collect();
        Self {
            order,
            size,
            len: functions(size, kind).len(),
            turned,
        }
    }

    /// The functions turned by element `g`, `[len, size²]`.
    pub fn turned(&self, g: usize, device: &Device) -> Tensor<2> {
        let v = self.turned[g % self.order].clone();
        Tensor::from_data(
            TensorData::new(v, [self.len, self.size * self.size]),
            device,
        )
    }

    /// Filters `[rows, size, size]` from coefficients `[rows, len]`, turned
    /// by element `g`.
    pub fn filters(&self, coefficients: Tensor<2>, g: usize) -> Tensor<3> {
        let [rows, _] = coefficients.dims();
        let device = coefficients.device();
        coefficients
            .matmul(self.turned(g, &device))
            .reshape([rows, self.size, self.size])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// e2cnn's basis at k = 5: the centre pixel, 5 functions on ring 1
    /// (frequencies 0..2) and 5 on ring 2 (its cutoff, 2, on the outer
    /// ring); the wide one: 1 + 5 + 9. Each of unit norm upright.
    #[test]
    fn five_by_five_has_eleven_e2cnn_functions_of_unit_norm() {
        for (kind, len) in [(BasisKind::E2cnn, 11), (BasisKind::Wide, 15)] {
            let b = SteerableBasis::new(8, 5, kind);
            assert_eq!(b.len, len, "{kind:?}");
            for f in b.turned[0].chunks(25) {
                let norm: f32 = f.iter().map(|x| x * x).sum::<f32>().sqrt();
                assert!((norm - 1.0).abs() < 1e-6, "{kind:?}: {norm}");
            }
        }
        // e2cnn's centre ring is a single pixel.
        let centre = &SteerableBasis::new(8, 5, BasisKind::E2cnn).turned[0][..25];
        assert_eq!(centre.iter().filter(|&&v| v.abs() > 1e-6).count(), 1);
        assert!((centre[12] - 1.0).abs() < 1e-6);
    }

    /// The sampled quarter turn (a pixel permutation) is the functions
    /// turned by 90° and sampled: the direction conventions agree.
    #[test]
    fn a_quarter_turn_of_the_samples_is_the_sampled_quarter_turn() {
        let (upright, norms) = sample(5, BasisKind::Wide, 0.0, None);
        let upright: Vec<f32> = upright.iter().map(|&x| x as f32).collect();
        let (analytic, _) = sample(5, BasisKind::Wide, 90.0, Some(&norms));
        let permuted = quarter_turn(&upright, 5);
        let worst = permuted
            .iter()
            .zip(&analytic)
            .fold(0.0f64, |m, (&a, &b)| m.max((a as f64 - b).abs()));
        assert!(worst < 1e-6, "{worst}");
        // And two eighth turns of C8 are a quarter turn, exactly.
        let b = SteerableBasis::new(8, 5, BasisKind::E2cnn);
        assert_eq!(b.turned[2], quarter_turn(&b.turned[0], 5));
        assert_eq!(b.turned[3], quarter_turn(&b.turned[1], 5));
        // The eighth turn is a real turn: not the upright samples.
        let moved = b.turned[1]
            .iter()
            .zip(&b.turned[0])
            .fold(0.0f32, |m, (a, c)| m.max((a - c).abs()));
        assert!(moved > 0.1, "{moved}");
    }
}
