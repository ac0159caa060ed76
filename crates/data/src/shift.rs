//! Distribution shifts applied to whole image sets: corruptions at five
//! severity levels, with CIFAR-10-C's parameters (Hendrycks & Dietterich
//! 2019) on images scaled to [0, 1]. Random corruptions draw from a stream
//! seeded by the seed and the image's index, so a shifted set is the same
//! whatever order or thread computes it.

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
    /// A share of the pixels set to 0 or 1 (half each), per channel.
    SaltPepper,
    /// Gaussian blur of standard deviation σ pixels (reflected borders).
    GaussianBlur,
    /// x + c on every channel (CIFAR-10-C adds c to HSV's value).
    Brightness,
    /// (x − mean) · c + mean, the mean over the image.
    Contrast,
}

/// Severity levels are 1..=LEVELS.
pub const LEVELS: usize = 5;

impl Corruption {
    pub const ALL: [Corruption; 5] = [
        Corruption::GaussianNoise,
        Corruption::SaltPepper,
        Corruption::GaussianBlur,
        Corruption::Brightness,
        Corruption::Contrast,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Corruption::GaussianNoise => "gaussian-noise",
            Corruption::SaltPepper => "salt-pepper",
            Corruption::GaussianBlur => "gaussian-blur",
            Corruption::Brightness => "brightness",
            Corruption::Contrast => "contrast",
        }
    }

    /// The parameter of `level` (1..=5): CIFAR-10-C's severities.
    pub fn parameter(self, level: usize) -> Option<f64> {
        let table: [f64; LEVELS] = match self {
            Corruption::GaussianNoise => [0.04, 0.06, 0.08, 0.09, 0.10],
            Corruption::SaltPepper => [0.01, 0.02, 0.03, 0.05, 0.07],
            Corruption::GaussianBlur => [0.4, 0.6, 0.7, 0.8, 1.0],
            Corruption::Brightness => [0.05, 0.1, 0.15, 0.2, 0.3],
            Corruption::Contrast => [0.75, 0.5, 0.4, 0.3, 0.15],
        };
        level.checked_sub(1).and_then(|i| table.get(i)).copied()
    }

    /// `set` with every image corrupted at `level`; `None` for a level
    /// outside 1..=5.
    pub fn apply(self, level: usize, set: &ImageSet, seed: u64) -> Option<ImageSet> {
        let c = self.parameter(level)?;
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
                    for v in &mut x {
                        if rng.random::<f64>() < c {
                            *v = if rng.random::<bool>() { 1.0 } else { 0.0 };
                        }
                    }
                }
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
        Some(out)
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

/// Separable Gaussian blur of one `h x w` plane, radius ⌈3σ⌉, borders
/// reflected.
fn blur(plane: &mut [f64], h: usize, w: usize, sigma: f64) {
    let r = (3.0 * sigma).ceil() as isize;
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
