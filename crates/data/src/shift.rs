//! Distribution shifts applied to whole image sets: corruption families on
//! images scaled to [0, 1], at a parameter given directly (the RESQUE
//! authors' `noise.py` style: σ, a share, ...) or at one of five severity
//! levels with CIFAR-10-C's parameters (Hendrycks & Dietterich 2019).
//! Random corruptions draw from a stream seeded by the seed and the image's
//! index, so a shifted set is the same whatever order or thread computes
//! it.

use rand::Rng;
use rand_chacha::ChaCha8Rng;
use reusebench_seeds::{Purpose, Seeds};
use serde::{Deserialize, Serialize};

use crate::image_set::ImageSet;

/// A corruption family.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Corruption {
    /// x + N(0, σ²), σ per level.
    GaussianNoise,
    /// Share s: each pixel is set to black with probability s/2, then to
    /// white with probability s/2, all channels together (the RESQUE
    /// authors' `add_salt_and_pepper`: two independent masks, white last).
    SaltPepper,
    /// Share s of the values (each channel apart) set to 0 or 1, half each:
    /// this project's salt-and-pepper before 2026-12-06.
    SaltPepperPerValue,
    /// Gaussian blur of standard deviation σ pixels, per channel, as
    /// `scipy.ndimage.gaussian_filter` (the authors' blur): radius
    /// ⌊4σ + 0.5⌋, borders reflected (d c b a | a b c d).
    GaussianBlur,
    /// x + c on every channel (CIFAR-10-C adds c to HSV's value).
    Brightness,
    /// (x − mean) · c + mean, the mean over the image.
    Contrast,
}

/// Severity levels are 1..=LEVELS.
pub const LEVELS: usize = 5;

impl Corruption {
    pub const ALL: [Corruption; 6] = [
        Corruption::GaussianNoise,
        Corruption::SaltPepper,
        Corruption::SaltPepperPerValue,
        Corruption::GaussianBlur,
        Corruption::Brightness,
        Corruption::Contrast,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Corruption::GaussianNoise => "gaussian-noise",
            Corruption::SaltPepper => "salt-pepper",
            Corruption::SaltPepperPerValue => "salt-pepper-per-value",
            Corruption::GaussianBlur => "gaussian-blur",
            Corruption::Brightness => "brightness",
            Corruption::Contrast => "contrast",
        }
    }

    /// The parameter of `level` (1..=5): CIFAR-10-C's severities.
    pub fn parameter(self, level: usize) -> Option<f64> {
        let table: [f64; LEVELS] = match self {
            Corruption::GaussianNoise => [0.04, 0.06, 0.08, 0.09, 0.10],
            Corruption::SaltPepper | Corruption::SaltPepperPerValue => {
                [0.01, 0.02, 0.03, 0.05, 0.07]
            }
            Corruption::GaussianBlur => [0.4, 0.6, 0.7, 0.8, 1.0],
            Corruption::Brightness => [0.05, 0.1, 0.15, 0.2, 0.3],
            Corruption::Contrast => [0.75, 0.5, 0.4, 0.3, 0.15],
        };
        level.checked_sub(1).and_then(|i| table.get(i)).copied()
    }

    /// The parameter that leaves images as they are, and the strongest one
    /// calibration searches up to (a flat grey image for contrast, a share
    /// of 1 for salt-and-pepper; σ 8 pixels blurs a 32-pixel image to its
    /// mean colours).
    pub fn parameter_range(self) -> (f64, f64) {
        match self {
            Corruption::GaussianNoise => (0.0, 1.0),
            Corruption::SaltPepper | Corruption::SaltPepperPerValue => (0.0, 1.0),
            Corruption::GaussianBlur => (0.0, 8.0),
            Corruption::Brightness => (0.0, 1.0),
            Corruption::Contrast => (1.0, 0.0),
        }
    }

    /// Whether `p` lies in [`Corruption::parameter_range`].
    pub fn accepts(self, p: f64) -> bool {
        let (a, b) = self.parameter_range();
        p.is_finite() && p >= a.min(b) && p <= a.max(b)
    }

    /// `set` with every image corrupted at `level`; `None` for a level
    /// outside 1..=5.
    pub fn apply(self, level: usize, set: &ImageSet, seed: u64) -> Option<ImageSet> {
        Some(self.apply_parameter(self.parameter(level)?, set, seed))
    }

    /// `set` with every image corrupted at parameter `c` (σ, a share, an
    /// offset or a factor: see the variants).
    pub fn apply_parameter(self, c: f64, set: &ImageSet, seed: u64) -> ImageSet {
        let mut out = set.clone();
        let n = set.image_len();
        let (h, w) = (set.height, set.width);
        for (i, image) in out.pixels.chunks_mut(n).enumerate() {
            let mut rng = Seeds::new(seed).rng(Purpose::CorruptImage { image: i });
            let mut x: Vec<f64> = image.iter().map(|&p| p as f64 / 255.0).collect();
            match self {
                Corruption::GaussianNoise => {
                    for v in &mut x {
                        *v += c * standard_normal(&mut rng);
                    }
                }
                Corruption::SaltPepper => {
                    let plane = h * w;
                    for p in 0..plane {
                        let black = rng.random::<f64>() < c / 2.0;
                        let white = rng.random::<f64>() < c / 2.0;
                        for v in x.iter_mut().skip(p).step_by(plane) {
                            if white {
                                *v = 1.0;
                            } else if black {
                                *v = 0.0;
                            }
                        }
                    }
                }
                Corruption::SaltPepperPerValue => {
                    for v in &mut x {
                        if rng.random::<f64>() < c {
                            *v = if rng.random::<bool>() { 1.0 } else { 0.0 };
                        }
                    }
                }
                Corruption::GaussianBlur if c <= 0.0 => {}
                Corruption::GaussianBlur => {
                    for plane in x.chunks_mut(h * w) {
                        blur(plane, h, w, c);
                    }
                }
                Corruption::Brightness => x.iter_mut().for_each(|v| *v += c),
                Corruption::Contrast => {
                    let mean = x.iter().sum::<f64>() / x.len().max(1) as f64;
                    x.iter_mut().for_each(|v| *v = (*v - mean) * c + mean);
                }
            }
            for (p, v) in image.iter_mut().zip(x) {
                *p = (v.clamp(0.0, 1.0) * 255.0).round() as u8;
            }
        }
        out
    }
}

/// A standard normal draw (Box–Muller, the cosine half): one stream
/// position per two uniforms, so a seeded stream gives the same values on
/// every machine.
pub fn standard_normal(rng: &mut ChaCha8Rng) -> f64 {
    let a: f64 = rng.random::<f64>().max(f64::MIN_POSITIVE);
    let b: f64 = rng.random();
    (-2.0 * a.ln()).sqrt() * (std::f64::consts::TAU * b).cos()
}

/// Separable Gaussian blur of one `h x w` plane, radius ⌊4σ + 0.5⌋ (scipy's
/// `truncate=4.0`), borders reflected.
fn blur(plane: &mut [f64], h: usize, w: usize, sigma: f64) {
    let r = (4.0 * sigma + 0.5).floor() as isize;
    let kernel: Vec<f64> = (-r..=r)
        .map(|d| (-(d * d) as f64 / (2.0 * sigma * sigma)).exp())
        .collect();
    let sum: f64 = kernel.iter().sum();
    let kernel: Vec<f64> = kernel.iter().map(|k| k / sum).collect();
    let reflect = |i: isize, n: usize| -> usize {
        let n = n as isize;
        let mut i = i;
        while i < 0 || i >= n {
            i = if i < 0 { -i - 1 } else { 2 * n - i - 1 };
        }
        i as usize
    };
    let mut tmp = vec![0.0; h * w];
    for y in 0..h {
        for x in 0..w {
            tmp[y * w + x] = kernel
                .iter()
                .enumerate()
                .map(|(k, kv)| kv * plane[y * w + reflect(x as isize + k as isize - r, w)])
                .sum();
        }
    }
    for y in 0..h {
        for x in 0..w {
            plane[y * w + x] = kernel
                .iter()
                .enumerate()
                .map(|(k, kv)| kv * tmp[reflect(y as isize + k as isize - r, h) * w + x])
                .sum();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set() -> ImageSet {
        let mut s = ImageSet::empty(3, 8, 8);
        for i in 0..4u32 {
            let img: Vec<u8> = (0..3 * 64)
                .map(|p| ((p * 7 + i as usize * 31) % 200 + 20) as u8)
                .collect();
            s.push(&img, i % 2);
        }
        s
    }

    fn mean_abs_change(a: &ImageSet, b: &ImageSet) -> f64 {
        a.pixels
            .iter()
            .zip(&b.pixels)
            .map(|(&x, &y)| (x as f64 - y as f64).abs())
            .sum::<f64>()
            / a.pixels.len() as f64
    }

    #[test]
    fn every_corruption_grows_with_its_level_and_keeps_labels() {
        let s = set();
        for c in Corruption::ALL {
            let changes: Vec<f64> = (1..=LEVELS)
                .map(|l| mean_abs_change(&s, &c.apply(l, &s, 3).unwrap()))
                .collect();
            assert!(changes[0] > 0.0, "{} changes the images", c.name());
            assert!(
                changes[LEVELS - 1] > changes[0],
                "{}: level 5 moves more than level 1: {changes:?}",
                c.name()
            );
            assert_eq!(c.apply(1, &s, 3).unwrap().labels, s.labels);
        }
    }

    #[test]
    fn salt_and_pepper_sets_whole_pixels_as_the_authors_do() {
        let s = set();
        let (h, w) = (s.height, s.width);
        let out = Corruption::SaltPepper.apply_parameter(0.5, &s, 4);
        let mut hit = 0;
        for image in out.pixels.chunks(s.image_len()) {
            for p in 0..h * w {
                let v = [image[p], image[h * w + p], image[2 * h * w + p]];
                if v == [0; 3] || v == [255; 3] {
                    hit += 1;
                }
                // The fixture never holds 0 or 255: a changed value is a
                // changed pixel, in every channel at once.
                assert!(
                    v.iter().all(|&c| c == 0 || c == 255) || v.iter().all(|&c| c != 0 && c != 255),
                    "pixel {p}: channels disagree: {v:?}"
                );
            }
        }
        // Black with probability 1/4, then white with 1/4: 7/16 of pixels.
        let share = hit as f64 / (4 * h * w) as f64;
        assert!((share - 7.0 / 16.0).abs() < 0.1, "share {share}");
        // The old rule picks values, so channels of one pixel disagree.
        let old = Corruption::SaltPepperPerValue.apply_parameter(0.5, &s, 4);
        let split = old.pixels.chunks(s.image_len()).any(|image| {
            (0..h * w).any(|p| {
                (image[p] == 0 || image[p] == 255)
                    != (image[h * w + p] == 0 || image[h * w + p] == 255)
            })
        });
        assert!(split);
    }

    #[test]
    fn blur_reaches_four_sigma_as_scipy_and_parameters_at_rest_change_nothing() {
        // σ = 1: scipy's kernel has radius 4 (truncate 4.0); the old ⌈3σ⌉
        // stopped at 3.
        let mut spike = vec![0.0; 81];
        spike[40] = 1.0;
        blur(&mut spike, 9, 9, 1.0);
        let g = |d: f64| (-d * d / 2.0).exp();
        let norm: f64 = (-4..=4).map(|d| g(d as f64)).sum();
        assert!((spike[44] - g(4.0) / norm * g(0.0) / norm).abs() < 1e-12);
        assert!((spike[40] - (1.0 / norm).powi(2)).abs() < 1e-12);
        let s = set();
        for c in Corruption::ALL {
            let (rest, strongest) = c.parameter_range();
            assert_eq!(
                c.apply_parameter(rest, &s, 1).pixels,
                s.pixels,
                "{}",
                c.name()
            );
            assert!(c.accepts(strongest) && !c.accepts(-0.5) && !c.accepts(10.0));
        }
        let flat = Corruption::Contrast.apply_parameter(0.0, &s, 1);
        let first = &flat.pixels[..s.image_len()];
        assert!(first.iter().all(|&v| v.abs_diff(first[0]) <= 1));
    }

    #[test]
    fn levels_outside_one_to_five_are_refused_and_noise_is_seeded() {
        let s = set();
        assert!(Corruption::GaussianNoise.apply(0, &s, 0).is_none());
        assert!(Corruption::GaussianNoise.apply(6, &s, 0).is_none());
        let a = Corruption::GaussianNoise.apply(3, &s, 9).unwrap();
        let b = Corruption::GaussianNoise.apply(3, &s, 9).unwrap();
        let c = Corruption::GaussianNoise.apply(3, &s, 10).unwrap();
        assert_eq!(a.pixels, b.pixels);
        assert_ne!(a.pixels, c.pixels);
    }

    #[test]
    fn blur_keeps_a_constant_image_and_its_mass() {
        let mut plane = vec![0.5; 25];
        blur(&mut plane, 5, 5, 1.0);
        assert!(plane.iter().all(|v| (v - 0.5).abs() < 1e-12));
        let mut spike = vec![0.0; 49];
        spike[24] = 1.0;
        blur(&mut spike, 7, 7, 0.6);
        assert!((spike.iter().sum::<f64>() - 1.0).abs() < 1e-9);
        assert!(spike[24] < 1.0 && spike[23] > 0.0);
    }
}
