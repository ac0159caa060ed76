//! The validation split: a seeded, stratified hold-out from the training
//! data (or the dataset's official validation split where it has one), and
//! which split a cell is scored on.
//!
//! A cell scored on `validation` never sees the test images: [`hold_out`]
//! puts the validation images where the test images were and drops the
//! test set, so code downstream cannot read it by mistake.

use std::collections::BTreeMap;

use rand::seq::SliceRandom;
use reusebench_seeds::{Purpose, Seeds};
use serde::{Deserialize, Serialize};

use crate::error::DataError;
use crate::image_set::TrainTest;

/// Share of every class held out when a grid says nothing.
pub const DEFAULT_FRACTION: f64 = 0.1;

/// How the validation split is made. Neither `fraction` nor `per_class`:
/// the dataset's official validation split where it has one (FMoW),
/// otherwise [`DEFAULT_FRACTION`] of every class.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Validation {
    /// Share of every class's training images held out, in [0, 1); 0 keeps
    /// all of them for training (and leaves no validation split).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fraction: Option<f64>,
    /// This many training images of every class held out.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub per_class: Option<usize>,
    /// Which images are held out. Fixed across the cells' seeds by default,
    /// so that trials and final runs hold out the same images.
    #[serde(default)]
    pub seed: u64,
}

impl Validation {
    /// Checks the settings; the message names the key inside `validation`.
    pub fn check(&self) -> Result<(), (String, String)> {
        match (self.fraction, self.per_class) {
            (Some(_), Some(_)) => Err((
                "per_class".into(),
                "give `fraction` or `per_class`, not both".into(),
            )),
            (Some(f), None) if !(0.0..1.0).contains(&f) => {
                Err(("fraction".into(), format!("must be in [0, 1), got {f}")))
            }
            _ => Ok(()),
        }
    }

    /// Whether this leaves no validation images at all.
    pub fn is_empty(&self) -> bool {
        self.fraction == Some(0.0) || self.per_class == Some(0)
    }

    /// How many of a class's `n` training images go to validation: at
    /// least one where the share is positive, and never the whole class.
    fn count(&self, n: usize) -> usize {
        let want = match (self.fraction, self.per_class) {
            (_, Some(k)) => k,
            (Some(f), None) => (f * n as f64).round() as usize,
            (None, None) => (DEFAULT_FRACTION * n as f64).round() as usize,
        };
        let positive = self.fraction.is_none_or(|f| f > 0.0) && self.per_class != Some(0);
        let floor = usize::from(positive && n >= 2);
        want.max(floor).min(n.saturating_sub(1))
    }
}

/// The split a cell is scored on.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Split {
    /// The held-out part of the training data (hyperparameter search).
    Validation,
    /// The test split (final runs).
    #[default]
    Test,
}

impl Split {
    pub fn name(self) -> &'static str {
        match self {
            Split::Validation => "validation",
            Split::Test => "test",
        }
    }
}

/// Training indices of each class, in order; then `count` of each class,
/// drawn with `seed`, moved to validation. Returns (train, validation)
/// index lists, both in the original order.
pub fn stratified_indices(labels: &[u32], validation: &Validation) -> (Vec<usize>, Vec<usize>) {
    let mut by_class: BTreeMap<u32, Vec<usize>> = BTreeMap::new();
    for (i, &l) in labels.iter().enumerate() {
        by_class.entry(l).or_default().push(i);
    }
    let mut held = vec![false; labels.len()];
    for (class, mut members) in by_class {
        let n = validation.count(members.len());
        // One stream per class: adding a class leaves the others' draws as they were.
        let mut rng = Seeds::new(validation.seed).rng(Purpose::HoldOut { class });
        members.shuffle(&mut rng);
        for &i in &members[..n] {
            held[i] = true;
        }
    }
    (0..labels.len()).partition(|&i| !held[i])
}

/// `data` with its validation split taken out of training, scored on
/// `split`: the test set becomes the validation set for `Validation` (the
/// real test images are dropped). `data.validation` holds the validation
/// images either way.
pub fn hold_out(
    mut data: TrainTest,
    validation: &Validation,
    split: Split,
) -> Result<TrainTest, DataError> {
    validation
        .check()
        .map_err(|(k, m)| DataError::Config(format!("validation.{k}: {m}")))?;
    let official = validation.fraction.is_none() && validation.per_class.is_none();
    let held = match data.validation.take() {
        Some(official_set) if official => official_set,
        _ => {
            let (_, held) = stratified_indices(&data.train.labels, validation);
            let mut is_held = vec![false; data.train.len()];
            held.iter().for_each(|&i| is_held[i] = true);
            let labels = &data.train.labels;
            let h = data.train.select(&|i| is_held[i].then_some(labels[i]));
            data.train = data.train.select(&|i| (!is_held[i]).then_some(labels[i]));
            h
        }
    };
    if split == Split::Validation {
        if held.is_empty() {
            return Err(DataError::Config(format!(
                "{}: the validation split is empty (validation.fraction or per_class is 0), \
                 so a cell cannot be scored on it",
                data.name
            )));
        }
        data.test = held.clone();
    }
    data.validation = Some(held);
    Ok(data)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::image_set::ImageSet;

    #[test]
    fn stratified_counts_and_seed() {
        let labels: Vec<u32> = (0..100).map(|i| i % 4).collect();
        let v = Validation::default();
        let (train, held) = stratified_indices(&labels, &v);
        assert_eq!(held.len(), 12, "round(0.1 × 25) = 3 per class");
        assert_eq!(train.len() + held.len(), 100);
        for c in 0..4 {
            assert_eq!(held.iter().filter(|&&i| labels[i] == c).count(), 3);
        }
        let other = Validation {
            seed: 1,
            ..Validation::default()
        };
        assert_ne!(stratified_indices(&labels, &other).1, held);
        let per = Validation {
            per_class: Some(5),
            ..Validation::default()
        };
        assert_eq!(stratified_indices(&labels, &per).1.len(), 20);
        let none = Validation {
            fraction: Some(0.0),
            ..Validation::default()
        };
        assert!(stratified_indices(&labels, &none).1.is_empty());
        // A class of one image keeps it for training.
        assert!(
            stratified_indices(&[0, 1, 1], &v).1 == vec![1]
                || stratified_indices(&[0, 1, 1], &v).1 == vec![2]
        );
    }

    /// Writes each image's provenance into its first bytes: a part marker
    /// (1 train, 2 test) and its index, so that a test can follow images
    /// through the hold-out whatever the loader's pixels look like.
    fn tag(data: &mut TrainTest) {
        for (marker, set) in [(1u8, &mut data.train), (2u8, &mut data.test)] {
            let n = set.image_len();
            for i in 0..set.len() {
                let img = &mut set.pixels[i * n..i * n + 5];
                img[0] = marker;
                img[1..5].copy_from_slice(&(i as u32).to_le_bytes());
            }
        }
    }

    fn tags(set: &ImageSet) -> Vec<(u8, u32)> {
        (0..set.len())
            .map(|i| {
                let img = set.image(i);
                (img[0], u32::from_le_bytes(img[1..5].try_into().unwrap()))
            })
            .collect()
    }

    /// Held out from `data`: validation and training partition the loaded
    /// training images, no test image is in either, and a cell scored on
    /// validation has no test image at all.
    fn assert_disjoint(name: &str, mut data: TrainTest) {
        tag(&mut data);
        let train_before: std::collections::BTreeSet<_> = tags(&data.train).into_iter().collect();
        let test_before = tags(&data.test);
        for split in [Split::Test, Split::Validation] {
            let out = hold_out(data.clone(), &Validation::default(), split).unwrap();
            let val = tags(out.validation.as_ref().unwrap());
            let train = tags(&out.train);
            assert!(!val.is_empty(), "{name}: an empty validation split");
            let mut all: Vec<_> = train.iter().chain(&val).copied().collect();
            all.sort_unstable();
            let before: Vec<_> = train_before.iter().copied().collect();
            assert_eq!(
                all, before,
                "{name}: train + validation = the training images, each once"
            );
            assert!(
                val.iter().all(|t| t.0 == 1),
                "{name}: a test image in validation"
            );
            let scored = tags(&out.test);
            match split {
                Split::Test => assert_eq!(scored, test_before, "{name}: test set untouched"),
                Split::Validation => {
                    assert_eq!(scored, val, "{name}: scored on validation");
                    assert!(scored.iter().all(|t| t.0 == 1), "{name}: test read");
                }
            }
        }
    }

    #[test]
    fn every_loader_holds_out_disjoint_validation_images() {
        use crate::dataset::{DatasetSpec, load_dataset};
        let tmp = tempfile::tempdir().unwrap();
        let synthetic = DatasetSpec::Synthetic {
            classes: 4,
            train_per_class: 20,
            test_per_class: 5,
            seed: 0,
        };
        assert_disjoint("synthetic", load_dataset(&synthetic).unwrap());
        let cifar10 = tmp.path().join("cifar10");
        crate::cifar::write_cifar10_fixture(&cifar10, 2, 0).unwrap();
        let spec = DatasetSpec::Cifar10 {
            root: cifar10.clone(),
            train_per_class: None,
            test_per_class: None,
            records_per_file: None,
            subset_seed: None,
            swap_splits: false,
            image_size: None,
        };
        assert_disjoint("cifar10", load_dataset(&spec).unwrap());
        // Swapped (the test split trains): still disjoint.
        let spec = DatasetSpec::Cifar10 {
            root: cifar10,
            train_per_class: None,
            test_per_class: None,
            records_per_file: None,
            subset_seed: None,
            swap_splits: true,
            image_size: None,
        };
        let swapped = load_dataset(&spec).unwrap();
        assert_eq!(
            (swapped.train.len(), swapped.test.len()),
            (20, 100),
            "the test split trains"
        );
        assert_eq!(spec.class_counts(false), Some(vec![2; 10]));
        assert_disjoint("cifar10", load_dataset(&spec).unwrap());
        let cifar100 = tmp.path().join("cifar100");
        std::fs::create_dir_all(&cifar100).unwrap();
        let records = |n: usize| -> Vec<u8> {
            (0..n)
                .flat_map(|i| {
                    let mut r = vec![0u8, (i % 100) as u8];
                    r.extend(std::iter::repeat_n((i / 100) as u8, 3072));
                    r
                })
                .collect()
        };
        std::fs::write(cifar100.join("train.bin"), records(1000)).unwrap();
        std::fs::write(cifar100.join("test.bin"), records(200)).unwrap();
        let spec = DatasetSpec::Cifar100 {
            root: cifar100,
            train_per_class: None,
            test_per_class: None,
            records_per_file: None,
            subset_seed: None,
            image_size: None,
        };
        assert_disjoint("cifar100", load_dataset(&spec).unwrap());
        let tiny = tmp.path().join("tiny-imagenet-200");
        crate::tiny_imagenet::write_tiny_imagenet_fixture(&tiny, 3, 10, 2).unwrap();
        let spec = DatasetSpec::TinyImagenet {
            root: tiny,
            image_size: 16,
            train_per_class: None,
            test_per_class: None,
            subset_seed: None,
            cache_dir: Some(tmp.path().join("cache")),
        };
        assert_disjoint("tiny-imagenet", load_dataset(&spec).unwrap());
        let folder = tmp.path().join("folder");
        crate::image_folder::write_image_folder_fixture(&folder, 3, 10, false).unwrap();
        let spec = DatasetSpec::ImageFolder {
            root: folder.clone(),
            train: "train".into(),
            test: "test".into(),
            val: None,
            image_size: 8,
            mean: None,
            std: None,
            train_per_class: None,
            test_per_class: None,
            subset_seed: None,
            cache_dir: Some(tmp.path().join("folder-cache")),
            groups: Some(crate::image_folder::FIXTURE_GROUPS.into()),
        };
        let data = load_dataset(&spec).unwrap();
        // The hold-out carries every image's group along with it.
        let out = hold_out(data.clone(), &Validation::default(), Split::Validation).unwrap();
        for set in [&out.train, &out.test] {
            assert_eq!(set.groups.len(), set.len(), "groups follow the images");
        }
        assert_disjoint("image-folder", data);
        let fmow = tmp.path().join("fmow");
        crate::fmow::write_fmow_fixture(&fmow, 400).unwrap();
        let random = DatasetSpec::Fmow {
            root: fmow.clone(),
            image_size: 8,
            split: crate::fmow::FmowSplit::Random {
                test_fraction: 0.3,
                seed: 0,
            },
            train_per_class: None,
            test_per_class: None,
            subset_seed: None,
        };
        assert_disjoint("fmow (random split)", load_dataset(&random).unwrap());
    }

    /// FMoW's official split: validation is WILDS' `val` rows (2013–2015)
    /// for the OOD test, `id_val` rows for the ID test; no row is in two parts.
    #[test]
    fn fmow_uses_the_wilds_validation_split() {
        use crate::fmow::{
            FmowEval, FmowSplit, Part, assign, load_fmow, read_metadata, write_fmow_fixture,
        };
        let tmp = tempfile::tempdir().unwrap();
        write_fmow_fixture(tmp.path(), 400).unwrap();
        let rows = read_metadata(tmp.path()).unwrap();
        for (eval, want) in [
            (FmowEval::OodTest, (2013..=2015, "val")),
            (FmowEval::IdTest, (0..=2012, "val")),
        ] {
            let split = FmowSplit::Official { test: eval };
            let parts = assign(&rows, split);
            let val: Vec<_> = rows
                .iter()
                .zip(&parts)
                .filter(|(_, p)| **p == Some(Part::Validation))
                .map(|(r, _)| r)
                .collect();
            assert!(!val.is_empty(), "{eval:?}: the fixture has validation rows");
            assert!(
                val.iter()
                    .all(|r| r.split == want.1 && want.0.contains(&r.year))
            );
            for (row, part) in rows.iter().zip(&parts) {
                match part {
                    Some(Part::Train) => assert_eq!(row.split, "train"),
                    Some(Part::Test) => assert_eq!(row.split, "test"),
                    _ => {}
                }
            }
            let data = load_fmow(tmp.path(), 8, split).unwrap();
            let held = hold_out(data, &Validation::default(), Split::Validation).unwrap();
            assert_eq!(
                held.test.len(),
                val.len(),
                "{eval:?}: scored on the official split"
            );
            assert_eq!(
                held.test.labels,
                val.iter().map(|r| r.label).collect::<Vec<_>>()
            );
        }
    }

    #[test]
    fn settings_are_checked() {
        let both = Validation {
            fraction: Some(0.1),
            per_class: Some(3),
            seed: 0,
        };
        assert_eq!(both.check().unwrap_err().0, "per_class");
        let big = Validation {
            fraction: Some(1.0),
            ..Validation::default()
        };
        assert!(big.check().unwrap_err().1.contains("[0, 1)"));
    }
}
