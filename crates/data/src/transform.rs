//! Train augmentation (random crop with zero padding + horizontal flip) and
//! per-channel normalisation, writing straight into the batch buffer.

use rand::Rng;
use serde::{Deserialize, Serialize};

/// Per-channel mean and standard deviation, in [0, 1] pixel units.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Normalization {
    pub mean: [f32; 3],
    pub std: [f32; 3],
}

impl Normalization {
    /// ImageNet's statistics, what torchvision's pretrained weights expect.
    pub const IMAGENET: Normalization = Normalization {
        mean: [0.485, 0.456, 0.406],
        std: [0.229, 0.224, 0.225],
    };
}

/// Which statistics normalise the images: the dataset's own (Mammoth's
/// convention), ImageNet's (for a backbone pretrained on ImageNet, whose
/// weights expect them), or given ones.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub enum NormalizationChoice {
    #[default]
    Dataset,
    Imagenet,
    Custom {
        mean: [f32; 3],
        std: [f32; 3],
    },
}

impl NormalizationChoice {
    /// The statistics to use for a dataset whose own are `dataset`.
    pub fn resolve(self, dataset: Normalization) -> Normalization {
        match self {
            NormalizationChoice::Dataset => dataset,
            NormalizationChoice::Imagenet => Normalization::IMAGENET,
            NormalizationChoice::Custom { mean, std } => Normalization { mean, std },
        }
    }
}

/// What happens to a training image before it is normalised.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Augment {
    /// Zero padding on every side before a random crop back to size; 0 turns cropping off.
    pub crop_padding: usize,
    pub horizontal_flip: bool,
}

impl Augment {
    /// Whether images pass through unchanged.
    pub fn is_none(&self) -> bool {
        self.crop_padding == 0 && !self.horizontal_flip
    }

    pub const NONE: Augment = Augment {
        crop_padding: 0,
        horizontal_flip: false,
    };
    /// The Mammoth convention for CIFAR-sized images.
    pub const STANDARD: Augment = Augment {
        crop_padding: 4,
        horizontal_flip: true,
    };
}

impl Default for Augment {
    fn default() -> Self {
        Self::STANDARD
    }
}

/// Writes one CHW `u8` image, augmented and normalised, into `out`.
pub fn write_image<R: Rng>(
    src: &[u8],
    channels: usize,
    height: usize,
    width: usize,
    augment: Augment,
    norm: &Normalization,
    rng: &mut R,
    out: &mut [f32],
) {
    let pad = augment.crop_padding as i64;
    let (dy, dx) = if pad > 0 {
        (
            rng.random_range(-pad..=pad) as isize,
            rng.random_range(-pad..=pad) as isize,
        )
    } else {
        (0, 0)
    };
    let flip = augment.horizontal_flip && rng.random::<bool>();
    for c in 0..channels {
        let scale = 1.0 / (255.0 * norm.std[c % 3]);
        let shift = norm.mean[c % 3] / norm.std[c % 3];
        // Zero padding in pixel space becomes this value after normalisation.
        let pad_value = -shift;
        let plane = &src[c * height * width..(c + 1) * height * width];
        let out_plane = &mut out[c * height * width..(c + 1) * height * width];
        for y in 0..height {
            let sy = y as isize + dy;
            let row = &mut out_plane[y * width..(y + 1) * width];
            if sy < 0 || sy >= height as isize {
                row.fill(pad_value);
                continue;
            }
            let src_row = &plane[sy as usize * width..(sy as usize + 1) * width];
            for x in 0..width {
                let xx = if flip { width - 1 - x } else { x };
                let sx = xx as isize + dx;
                row[x] = if sx < 0 || sx >= width as isize {
                    pad_value
                } else {
                    src_row[sx as usize] as f32 * scale - shift
                };
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    fn ramp() -> Vec<u8> {
        (0..3 * 4 * 4).map(|i| (i * 5) as u8).collect()
    }

    #[test]
    fn no_augment_is_plain_normalisation() {
        let norm = Normalization {
            mean: [0.5; 3],
            std: [0.25; 3],
        };
        let mut out = vec![0.0; 48];
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(0);
        write_image(&ramp(), 3, 4, 4, Augment::NONE, &norm, &mut rng, &mut out);
        for (i, v) in out.iter().enumerate() {
            let expected = ((i * 5) as f32 / 255.0 - 0.5) / 0.25;
            assert!((v - expected).abs() < 1e-5);
        }
    }

    #[test]
    fn crop_shifts_and_pads_with_zero_pixels() {
        let norm = Normalization {
            mean: [0.0; 3],
            std: [1.0; 3],
        };
        let aug = Augment {
            crop_padding: 2,
            horizontal_flip: true,
        };
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(7);
        let src = ramp();
        let mut seen_shift = false;
        for _ in 0..20 {
            let mut out = vec![0.0; 48];
            write_image(&src, 3, 4, 4, aug, &norm, &mut rng, &mut out);
            // Every output value is a source pixel of the same channel or padding (0).
            for c in 0..3 {
                for v in &out[c * 16..(c + 1) * 16] {
                    let raw = (v * 255.0).round() as i32;
                    assert!(raw == 0 || (c as i32 * 80..c as i32 * 80 + 80).contains(&raw));
                }
            }
            let plain: Vec<f32> = src.iter().map(|&p| p as f32 / 255.0).collect();
            seen_shift |= out != plain;
        }
        assert!(seen_shift);
    }
}

#[cfg(test)]
mod normalization_tests {
    use super::*;

    #[test]
    fn choices_resolve_and_parse() {
        let cifar = Normalization {
            mean: [0.5; 3],
            std: [0.25; 3],
        };
        let parse = |t: &str| serde_json::from_str::<NormalizationChoice>(t).unwrap();
        assert_eq!(parse(r#""dataset""#).resolve(cifar), cifar);
        assert_eq!(
            parse(r#""imagenet""#).resolve(cifar),
            Normalization::IMAGENET
        );
        let custom = parse(r#"{"custom": {"mean": [0.1, 0.2, 0.3], "std": [1, 1, 1]}}"#);
        assert_eq!(custom.resolve(cifar).mean, [0.1, 0.2, 0.3]);
    }
}
