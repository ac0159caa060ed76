//! A learnable shortcut injected into images of any dataset: a coloured
//! patch or a colour tint whose colour is tied to a class. With strength
//! p, an image of class c carries shortcut c with probability p and the
//! shortcut of another class (uniformly) otherwise, so the shortcut
//! predicts the label exactly as often as p says.
//!
//! Evaluation sets: unbiased (the images as they are), bias-aligned (every
//! image with its own class's shortcut) and bias-conflicting (every image
//! with the shortcut of another class).

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use crate::image_set::ImageSet;

/// What the shortcut looks like.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ShortcutKind {
    /// A square of the class colour in the top-left corner.
    #[default]
    Patch,
    /// The whole image blended towards the class colour.
    Tint,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Shortcut {
    #[serde(default)]
    pub kind: ShortcutKind,
    /// Share of training images of class c that carry shortcut c.
    pub strength: f64,
    /// Side of the patch in pixels.
    #[serde(default = "default_size")]
    pub size: usize,
    /// Weight of the colour in a tint.
    #[serde(default = "default_tint")]
    pub tint: f64,
}

fn default_size() -> usize {
    4
}

fn default_tint() -> f64 {
    0.3
}

/// Distinct saturated colours, then hues spread around the circle.
fn class_colour(class: u32) -> [u8; 3] {
    const BASE: [[u8; 3]; 10] = [
        [255, 0, 0],
        [0, 255, 0],
        [0, 0, 255],
        [255, 255, 0],
        [255, 0, 255],
        [0, 255, 255],
        [255, 128, 0],
        [128, 0, 255],
        [255, 255, 255],
        [0, 0, 0],
    ];
    if let Some(c) = BASE.get(class as usize) {
        return *c;
    }
    // Hue by the golden angle: neighbours stay far apart.
    let h = (class as f64 * 137.508) % 360.0 / 60.0;
    let x = (1.0 - (h % 2.0 - 1.0).abs()) * 255.0;
    let (r, g, b) = match h as u32 {
        0 => (255.0, x, 0.0),
        1 => (x, 255.0, 0.0),
        2 => (0.0, 255.0, x),
        3 => (0.0, x, 255.0),
        4 => (x, 0.0, 255.0),
        _ => (255.0, 0.0, x),
    };
    [r as u8, g as u8, b as u8]
}

impl Shortcut {
    pub fn validate(&self) -> Result<(), String> {
        if !(0.0..=1.0).contains(&self.strength) {
            return Err(format!("strength must be in [0, 1], got {}", self.strength));
        }
        if self.size == 0 {
            return Err("size must be >= 1".into());
        }
        if !(self.tint > 0.0 && self.tint <= 1.0) {
            return Err(format!("tint must be in (0, 1], got {}", self.tint));
        }
        Ok(())
    }

    /// Paints shortcut `class` onto image `i` of `set` (CHW, u8).
    pub fn paint(&self, set: &mut ImageSet, i: usize, class: u32) {
        let (c, h, w) = (set.channels, set.height, set.width);
        let n = set.image_len();
        let colour = class_colour(class);
        let image = &mut set.pixels[i * n..(i + 1) * n];
        for ch in 0..c {
            let v = colour[ch.min(2)];
            let plane = &mut image[ch * h * w..(ch + 1) * h * w];
            match self.kind {
                ShortcutKind::Patch => {
                    for y in 0..self.size.min(h) {
                        for x in 0..self.size.min(w) {
                            plane[y * w + x] = v;
                        }
                    }
                }
                ShortcutKind::Tint => {
                    for p in plane.iter_mut() {
                        *p = ((1.0 - self.tint) * *p as f64 + self.tint * v as f64).round() as u8;
                    }
                }
            }
        }
    }

    /// A class other than `class` (of `classes`), uniformly.
    fn other(class: u32, classes: u32, rng: &mut ChaCha8Rng) -> u32 {
        let r = rng.random_range(0..classes - 1);
        if r >= class { r + 1 } else { r }
    }

    /// `set` with a shortcut on every image: its own class's with
    /// probability `strength`, another class's otherwise. Returns the set
    /// and each image's shortcut class.
    pub fn biased(&self, set: &ImageSet, classes: u32, seed: u64) -> (ImageSet, Vec<u32>) {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let mut out = set.clone();
        let mut carried = Vec::with_capacity(set.len());
        for i in 0..set.len() {
            let y = set.labels[i];
            let s = if classes < 2 || rng.random::<f64>() < self.strength {
                y
            } else {
                Self::other(y, classes, &mut rng)
            };
            self.paint(&mut out, i, s);
            carried.push(s);
        }
        (out, carried)
    }

    /// Every image with its own class's shortcut.
    pub fn aligned(&self, set: &ImageSet) -> ImageSet {
        let mut out = set.clone();
        for i in 0..set.len() {
            let y = set.labels[i];
            self.paint(&mut out, i, y);
        }
        out
    }

    /// Every image with the shortcut of another class (seeded).
    pub fn conflicting(&self, set: &ImageSet, classes: u32, seed: u64) -> ImageSet {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let mut out = set.clone();
        for i in 0..set.len() {
            let s = Self::other(set.labels[i], classes, &mut rng);
            self.paint(&mut out, i, s);
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(n: usize, classes: u32) -> ImageSet {
        let mut s = ImageSet::empty(3, 8, 8);
        for i in 0..n {
            s.push(&[100u8; 3 * 64], i as u32 % classes);
        }
        s
    }

    #[test]
    fn injection_gives_the_configured_correlation() {
        let data = set(4000, 4);
        for strength in [1.0, 0.95, 0.5] {
            let sc = Shortcut {
                kind: ShortcutKind::Patch,
                strength,
                size: 3,
                tint: 0.3,
            };
            let (biased, carried) = sc.biased(&data, 4, 7);
            let own = carried
                .iter()
                .zip(&data.labels)
                .filter(|(s, y)| s == y)
                .count() as f64
                / data.len() as f64;
            assert!((own - strength).abs() < 0.02, "{strength}: {own}");
            // The patch is the shortcut's colour; the rest is untouched.
            let first = biased.image(0);
            let colour = class_colour(carried[0]);
            assert_eq!([first[0], first[64], first[128]], colour);
            assert_eq!(first[3 * 8 + 3], 100);
        }
    }

    #[test]
    fn aligned_and_conflicting_sets() {
        let data = set(40, 4);
        let sc = Shortcut {
            kind: ShortcutKind::Tint,
            strength: 1.0,
            size: 4,
            tint: 0.5,
        };
        let aligned = sc.aligned(&data);
        let conflicting = sc.conflicting(&data, 4, 1);
        for i in 0..data.len() {
            let y = data.labels[i];
            let red = |s: &ImageSet| s.image(i)[0];
            // Tint: halfway between 100 and the colour's red channel.
            let want = ((100.0 + class_colour(y)[0] as f64) / 2.0).round() as u8;
            assert_eq!(red(&aligned), want);
            assert_eq!(conflicting.labels[i], y);
            assert_ne!(
                conflicting.image(i),
                aligned.image(i),
                "another class's colour"
            );
        }
        assert!(
            Shortcut {
                strength: 1.5,
                ..sc.clone()
            }
            .validate()
            .is_err()
        );
        assert!(class_colour(10) != class_colour(11));
    }
}
