//! A seeded per-class partition of a training set into parts by percentage,
//! as the RESQUE authors' `SplitData/split.py` cuts CIFAR-10 into 50/30/20:
//! the model is pretrained on one selection of parts and the shift's data
//! is drawn from another, so the shifted images were never trained on
//! clean.

use rand::seq::SliceRandom;
use reusebench_seeds::{Purpose, Seeds};
use serde::{Deserialize, Serialize};

use crate::image_set::ImageSet;

/// Percentages of each class, in order, and the seed of the shuffle.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClassParts {
    /// Shares in percent; they sum to 100.
    #[serde(default = "authors_shares")]
    pub shares: Vec<u32>,
    pub seed: u64,
}

/// The RESQUE authors' cut: 50 % clean training, 30 % shift, 20 % common.
pub fn authors_shares() -> Vec<u32> {
    vec![50, 30, 20]
}

impl ClassParts {
    /// A message naming what is wrong, if anything.
    pub fn check(&self) -> Result<(), String> {
        let sum: u32 = self.shares.iter().sum();
        if self.shares.len() < 2 || sum != 100 || self.shares.contains(&0) {
            return Err(format!(
                "shares must be two or more positive percentages that sum to 100, got {:?}",
                self.shares
            ));
        }
        Ok(())
    }

    /// For each part, the indices of `set` in it. Each class is shuffled
    /// by its own stream, then cut at ⌊n · share⌋ boundaries (the last part
    /// takes the rest, as `split.py`).
    pub fn indices(&self, set: &ImageSet) -> Vec<Vec<usize>> {
        let mut parts = vec![Vec::new(); self.shares.len()];
        let mut classes: Vec<u32> = set.labels.clone();
        classes.sort_unstable();
        classes.dedup();
        for class in classes {
            let mut idx: Vec<usize> = (0..set.len()).filter(|&i| set.labels[i] == class).collect();
            idx.shuffle(&mut Seeds::new(self.seed).rng(Purpose::ClassParts { class }));
            let n = idx.len();
            let mut start = 0;
            for (p, share) in self.shares.iter().enumerate() {
                let end = if p + 1 == self.shares.len() {
                    n
                } else {
                    (start + n * *share as usize / 100).min(n)
                };
                parts[p].extend(&idx[start..end]);
                start = end;
            }
        }
        parts.iter_mut().for_each(|p| p.sort_unstable());
        parts
    }

    /// The images of `set` in the parts `keep` (0-based), in `set`'s order.
    pub fn select(&self, set: &ImageSet, keep: &[usize]) -> ImageSet {
        let parts = self.indices(set);
        let mut idx: Vec<usize> = keep
            .iter()
            .flat_map(|&k| parts[k].iter().copied())
            .collect();
        idx.sort_unstable();
        set.subset(&idx)
    }
}

/// [`ClassParts`] and which of them to keep (pretrain's `train_parts`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PartSelection {
    #[serde(default = "authors_shares")]
    pub shares: Vec<u32>,
    pub seed: u64,
    /// 0-based parts to keep.
    pub keep: Vec<usize>,
}

impl PartSelection {
    pub fn parts(&self) -> ClassParts {
        ClassParts {
            shares: self.shares.clone(),
            seed: self.seed,
        }
    }

    /// A message naming what is wrong, if anything.
    pub fn check(&self) -> Result<(), String> {
        self.parts().check()?;
        if self.keep.is_empty() || self.keep.iter().any(|&k| k >= self.shares.len()) {
            return Err(format!(
                "keep must name parts 0..{} (0-based), got {:?}",
                self.shares.len() - 1,
                self.keep
            ));
        }
        Ok(())
    }

    pub fn select(&self, set: &ImageSet) -> ImageSet {
        self.parts().select(set, &self.keep)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(per_class: usize) -> ImageSet {
        let mut s = ImageSet::empty(1, 1, 1);
        for i in 0..3 * per_class {
            s.push(&[i as u8], (i % 3) as u32);
        }
        s
    }

    #[test]
    fn parts_cover_each_class_once_in_the_authors_shares() {
        let s = set(50);
        let cut = ClassParts {
            shares: authors_shares(),
            seed: 1,
        };
        let parts = cut.indices(&s);
        let sizes: Vec<usize> = parts.iter().map(Vec::len).collect();
        assert_eq!(sizes, vec![75, 45, 30]);
        let mut all: Vec<usize> = parts.concat();
        all.sort_unstable();
        assert_eq!(all, (0..150).collect::<Vec<_>>());
        for part in &parts {
            for c in 0..3 {
                let n = part.iter().filter(|&&i| s.labels[i] == c).count();
                assert_eq!(n * 3, part.len(), "part stratified by class");
            }
        }
        // Seeded: the same seed, the same parts; another seed, others.
        assert_eq!(cut.indices(&s), parts);
        assert_ne!(
            ClassParts {
                shares: authors_shares(),
                seed: 2
            }
            .indices(&s),
            parts
        );
    }

    #[test]
    fn a_selection_keeps_its_parts_and_the_rest_is_disjoint() {
        let s = set(20);
        let pre = PartSelection {
            shares: authors_shares(),
            seed: 7,
            keep: vec![0, 2],
        };
        let shift = PartSelection {
            keep: vec![1, 2],
            ..pre.clone()
        };
        let (a, b) = (pre.select(&s), shift.select(&s));
        assert_eq!((a.len(), b.len()), (42, 30));
        let only_shift: Vec<u8> = shift.parts().select(&s, &[1]).pixels;
        assert!(
            only_shift.iter().all(|v| !a.pixels.contains(v)),
            "part 1 never pretrained"
        );
        assert!(
            PartSelection {
                keep: vec![3],
                ..pre.clone()
            }
            .check()
            .is_err()
        );
        assert!(
            ClassParts {
                shares: vec![50, 30],
                seed: 0
            }
            .check()
            .is_err()
        );
    }
}
