//! A procedural image dataset for the quickstart and tests.
//!
//! Class `c` of `K` is an oriented sine grating with orientation `c·180°/K`
//! and a class-specific spatial frequency, drawn inside a soft blob at a
//! random place on a random two-colour background, then tinted with a random
//! hue and covered in pixel noise. Orientation and frequency are jittered per
//! image, so neighbouring classes overlap a little. A small CNN learns it
//! (the quickstart's pretraining reaches ~99 % on 6 classes); nearest class
//! mean on raw pixels stays near chance (tested below), and colour carries
//! no label information. Everything is a function of `seed`.

use rand::Rng;
use rand_chacha::ChaCha8Rng;
use reusebench_seeds::{Purpose, Seeds};

use crate::error::DataError;
use crate::image_set::{ImageSet, TrainTest};
use crate::transform::Normalization;

pub(crate) fn default_classes() -> usize {
    10
}
pub(crate) fn default_train_per_class() -> usize {
    300
}
pub(crate) fn default_test_per_class() -> usize {
    100
}

pub(crate) const SIZE: usize = 32;

fn gaussian(rng: &mut ChaCha8Rng) -> f32 {
    // Box-Muller; avoids a dependency for one distribution.
    let u1: f32 = rng.random::<f32>().max(1e-7);
    let u2: f32 = rng.random();
    (-2.0 * u1.ln()).sqrt() * (std::f32::consts::TAU * u2).cos()
}

fn hue_to_rgb(h: f32) -> [f32; 3] {
    let k = |n: f32| {
        let k = (n + h * 6.0) % 6.0;
        1.0 - (k.min(4.0 - k).clamp(0.0, 1.0))
    };
    [k(5.0), k(3.0), k(1.0)]
}

fn draw(class: usize, classes: usize, rng: &mut ChaCha8Rng, out: &mut [u8]) {
    let step = std::f32::consts::PI / classes as f32;
    let theta = class as f32 * step + gaussian(rng) * step * 0.3;
    // Frequencies interleave so that neighbours in orientation differ in frequency too.
    let freq_index = (class * 7) % classes;
    let freq = 0.12 + 0.22 * freq_index as f32 / classes as f32 + gaussian(rng) * 0.01;
    let phase: f32 = rng.random::<f32>() * std::f32::consts::TAU;
    let (cx, cy) = (
        8.0 + rng.random::<f32>() * 16.0,
        8.0 + rng.random::<f32>() * 16.0,
    );
    let radius = 7.0 + rng.random::<f32>() * 5.0;
    let fg = hue_to_rgb(rng.random());
    let bg_a = hue_to_rgb(rng.random());
    let bg_b = hue_to_rgb(rng.random());
    let bg_angle: f32 = rng.random::<f32>() * std::f32::consts::TAU;
    let contrast = 0.5 + rng.random::<f32>() * 0.4;
    let noise = 0.08 + rng.random::<f32>() * 0.06;
    let (s, c) = theta.sin_cos();
    let (bs, bc) = bg_angle.sin_cos();
    for y in 0..SIZE {
        for x in 0..SIZE {
            let (fx, fy) = (x as f32, y as f32);
            let u = fx * c + fy * s;
            let grating = 0.5 + 0.5 * (std::f32::consts::TAU * freq * u + phase).sin();
            let d2 = (fx - cx).powi(2) + (fy - cy).powi(2);
            let mask = (-d2 / (2.0 * radius * radius)).exp();
            let t = 0.5 + 0.5 * ((fx - 16.0) * bc + (fy - 16.0) * bs) / 22.0;
            for ch in 0..3 {
                let bg = 0.25 + 0.35 * (bg_a[ch] * (1.0 - t) + bg_b[ch] * t);
                let fgv = contrast * grating * (0.4 + 0.6 * fg[ch]);
                let v = bg * (1.0 - mask) + fgv * mask + noise * gaussian(rng);
                out[ch * SIZE * SIZE + y * SIZE + x] = (v.clamp(0.0, 1.0) * 255.0).round() as u8;
            }
        }
    }
}

fn split(classes: usize, per_class: usize, rng: &mut ChaCha8Rng) -> ImageSet {
    let mut set = ImageSet::empty(3, SIZE, SIZE);
    set.pixels
        .reserve_exact(classes * per_class * 3 * SIZE * SIZE);
    set.labels.reserve_exact(classes * per_class);
    let mut buf = vec![0u8; 3 * SIZE * SIZE];
    // Interleave classes, like real datasets, so a prefix is balanced.
    for _ in 0..per_class {
        for class in 0..classes {
            draw(class, classes, rng, &mut buf);
            set.push(&buf, class as u32);
        }
    }
    set
}

/// Generates `classes` classes with the given images per class.
pub fn generate(
    classes: usize,
    train_per_class: usize,
    test_per_class: usize,
    seed: u64,
) -> Result<TrainTest, DataError> {
    if !(2..=256).contains(&classes) {
        return Err(DataError::Config(format!(
            "synthetic dataset needs 2..=256 classes, got {classes}"
        )));
    }
    // Separate streams for train and test: changing the size of one leaves the other as it was.
    let mut train_rng = Seeds::new(seed).rng(Purpose::SyntheticTrain);
    let mut test_rng = Seeds::new(seed).rng(Purpose::SyntheticTest);
    Ok(TrainTest {
        name: "synthetic".into(),
        num_classes: classes,
        class_names: (0..classes).map(|c| format!("grating{c}")).collect(),
        train: split(classes, train_per_class, &mut train_rng),
        test: split(classes, test_per_class, &mut test_rng),
        // Measured on the generator's output (seed 0, 10 classes, 300 per class).
        validation: None,
        normalization: Normalization {
            mean: [0.42, 0.42, 0.42],
            std: [0.17, 0.17, 0.17],
        },
        group_names: Vec::new(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deterministic_by_seed() {
        let a = generate(10, 5, 2, 3).unwrap();
        let b = generate(10, 5, 2, 3).unwrap();
        let c = generate(10, 5, 2, 4).unwrap();
        assert_eq!(a.train.pixels, b.train.pixels);
        assert_eq!(a.test.pixels, b.test.pixels);
        assert_ne!(a.train.pixels, c.train.pixels);
        assert_eq!(a.train.len(), 50);
        assert_eq!(a.test.labels[..10], (0..10).collect::<Vec<u32>>()[..]);
    }

    #[test]
    fn test_split_does_not_depend_on_train_size() {
        let a = generate(10, 5, 2, 3).unwrap();
        let b = generate(10, 9, 2, 3).unwrap();
        assert_eq!(a.test.pixels, b.test.pixels);
    }

    /// Not trivial: the per-class mean colour is the same for all classes
    /// (colour carries no label), while the images are far from constant.
    #[test]
    fn colour_carries_no_label_and_images_vary() {
        let d = generate(10, 60, 1, 0).unwrap();
        let px = 3 * 32 * 32;
        let mut means = vec![0f64; 10];
        for i in 0..d.train.len() {
            let m: f64 = d.train.image(i).iter().map(|&v| v as f64).sum::<f64>() / px as f64;
            means[d.train.labels[i] as usize] += m / 60.0;
        }
        let lo = means.iter().cloned().fold(f64::MAX, f64::min);
        let hi = means.iter().cloned().fold(f64::MIN, f64::max);
        assert!(
            hi - lo < 12.0,
            "class brightness differs too much: {means:?}"
        );
        let img = d.train.image(0);
        let distinct: std::collections::HashSet<u8> = img.iter().copied().collect();
        assert!(distinct.len() > 50);
    }

    /// Not solvable from raw pixel templates: nearest class mean on raw
    /// pixels stays near chance (10 %).
    #[test]
    fn raw_pixel_templates_do_not_solve_it() {
        let d = generate(10, 100, 30, 0).unwrap();
        let n = d.train.image_len();
        let mut means = vec![vec![0f64; n]; 10];
        for i in 0..d.train.len() {
            let c = d.train.labels[i] as usize;
            for (m, &p) in means[c].iter_mut().zip(d.train.image(i)) {
                *m += p as f64 / 100.0;
            }
        }
        let correct = (0..d.test.len())
            .filter(|&i| {
                let img = d.test.image(i);
                let dist = |m: &Vec<f64>| {
                    m.iter()
                        .zip(img)
                        .map(|(a, &b)| (a - b as f64).powi(2))
                        .sum::<f64>()
                };
                let best = (0..10)
                    .min_by(|&a, &b| dist(&means[a]).total_cmp(&dist(&means[b])))
                    .unwrap();
                best as u32 == d.test.labels[i]
            })
            .count();
        let acc = correct as f64 / d.test.len() as f64;
        assert!(acc < 0.3, "nearest class mean on raw pixels reaches {acc}");
    }

    #[test]
    fn rejects_bad_class_count() {
        assert!(generate(1, 1, 1, 0).is_err());
    }
}
