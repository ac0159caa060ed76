//! The dataset selector that grids name, and loading what it names through
//! the loaders (cifar, tiny_imagenet, fmow, synthetic).

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::error::DataError;
use crate::fmow::FmowSplit;
use crate::image_set::{ImageSet, TrainTest};
use crate::transform::Normalization;
use crate::{cifar, fmow, image_folder, synthetic, tiny_imagenet};

/// Which dataset a grid cell uses. `root` paths are the folder that holds the
/// official files (e.g. `cifar-10-batches-bin`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "name", rename_all = "kebab-case", deny_unknown_fields)]
pub enum DatasetSpec {
    /// Procedural images, deterministic by `seed` (see [`synthetic`]).
    Synthetic {
        #[serde(default = "synthetic::default_classes")]
        classes: usize,
        #[serde(default = "synthetic::default_train_per_class")]
        train_per_class: usize,
        #[serde(default = "synthetic::default_test_per_class")]
        test_per_class: usize,
        #[serde(default)]
        seed: u64,
    },
    /// CIFAR-10, official binary version.
    Cifar10 {
        root: PathBuf,
        /// Read only the first N records of each file (the way
        /// `../shared/datasets` cuts the official files), before the
        /// per-class caps.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        records_per_file: Option<usize>,
        /// Use at most this many training images per class (the first
        /// ones, or a seeded choice with `subset_seed`).
        #[serde(default)]
        train_per_class: Option<usize>,
        #[serde(default)]
        test_per_class: Option<usize>,
        /// Choose the per-class subsets at random with this seed, instead
        /// of the first images of each class.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        subset_seed: Option<u64>,
        /// Train on the official test split and take the official training
        /// split as the test split: a model that never saw the larger split
        /// (performative rounds drawn from it, as a pool).
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        swap_splits: bool,
        /// Resize to this many pixels a side after reading (bilinear; 32 =
        /// native): what models pretrained on ImageNet at 224 expect (the
        /// papers upsample CIFAR for them).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        image_size: Option<usize>,
    },
    /// CIFAR-100, official binary version (fine labels).
    Cifar100 {
        root: PathBuf,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        records_per_file: Option<usize>,
        #[serde(default)]
        train_per_class: Option<usize>,
        #[serde(default)]
        test_per_class: Option<usize>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        subset_seed: Option<u64>,
        /// Resize to this many pixels a side after reading (bilinear; 32 =
        /// native): what models pretrained on ImageNet at 224 expect (the
        /// papers upsample CIFAR for them).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        image_size: Option<usize>,
    },
    /// Tiny ImageNet-200, official layout (`root` = the `tiny-imagenet-200`
    /// folder); the official val split is the test set.
    TinyImagenet {
        root: PathBuf,
        /// Resize to this many pixels a side (64 = native).
        #[serde(default = "default_tiny_size")]
        image_size: usize,
        #[serde(default)]
        train_per_class: Option<usize>,
        #[serde(default)]
        test_per_class: Option<usize>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        subset_seed: Option<u64>,
        /// Where the decoded cache goes; `<root>/.reusebench-cache` when absent.
        #[serde(default)]
        cache_dir: Option<PathBuf>,
    },
    /// FMoW (WILDS `fmow_v1.1` layout), with each image's year and region.
    Fmow {
        root: PathBuf,
        /// Resize to this many pixels a side (224 = native).
        #[serde(default = "default_fmow_size")]
        image_size: usize,
        #[serde(default)]
        split: FmowSplit,
        #[serde(default)]
        train_per_class: Option<usize>,
        #[serde(default)]
        test_per_class: Option<usize>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        subset_seed: Option<u64>,
    },
    /// A researcher's own images, one folder per class (torchvision's
    /// ImageFolder): `root/<train>/<class>/*.{jpg,png,webp}`, the same classes
    /// under `<test>` and, if given, `<val>` (the dataset's own validation
    /// split then).
    ImageFolder {
        root: PathBuf,
        #[serde(default = "default_train_dir")]
        train: PathBuf,
        #[serde(default = "default_test_dir")]
        test: PathBuf,
        #[serde(default)]
        val: Option<PathBuf>,
        /// Resized to this many pixels a side.
        #[serde(default = "default_folder_size")]
        image_size: usize,
        /// Per-channel statistics in [0, 1] units (both or neither;
        /// ImageNet's when absent).
        #[serde(default)]
        mean: Option<[f32; 3]>,
        #[serde(default)]
        std: Option<[f32; 3]>,
        #[serde(default)]
        train_per_class: Option<usize>,
        #[serde(default)]
        test_per_class: Option<usize>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        subset_seed: Option<u64>,
        /// Where the decoded cache goes; `<root>/.reusebench-cache` when absent.
        #[serde(default)]
        cache_dir: Option<PathBuf>,
        /// A CSV of `file,group` lines (files relative to `root`) giving
        /// every image a group: the rows then add accuracy per group and
        /// the worst group's (Waterbirds' or CelebA's groups).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        groups: Option<PathBuf>,
    },
}

fn default_train_dir() -> PathBuf {
    PathBuf::from("train")
}
fn default_test_dir() -> PathBuf {
    PathBuf::from("test")
}
fn default_folder_size() -> usize {
    64
}

fn default_fmow_size() -> usize {
    fmow::NATIVE_SIZE
}

/// A CIFAR spec's `image_size` (native when absent), checked before any
/// file is read.
fn cifar_size(image_size: Option<usize>) -> Result<usize, DataError> {
    match image_size {
        None => Ok(cifar::SIZE),
        Some(size) if (1..=1024).contains(&size) => Ok(size),
        Some(size) => Err(DataError::Config(format!(
            "cifar image_size must be in 1..=1024, got {size}"
        ))),
    }
}

fn default_tiny_size() -> usize {
    tiny_imagenet::NATIVE_SIZE
}

impl DatasetSpec {
    /// Paths this spec reads, for validation before any work starts.
    pub fn required_paths(&self) -> Vec<PathBuf> {
        match self {
            DatasetSpec::Synthetic { .. } => vec![],
            DatasetSpec::Cifar10 { root, .. } => cifar::cifar10_files(root),
            DatasetSpec::Cifar100 { root, .. } => cifar::cifar100_files(root),
            DatasetSpec::TinyImagenet { root, .. } => vec![root.join("wnids.txt")],
            DatasetSpec::Fmow { root, .. } => vec![
                root.join("rgb_metadata.csv"),
                root.join("country_code_mapping.csv"),
            ],
            DatasetSpec::ImageFolder {
                root,
                train,
                groups,
                ..
            } => std::iter::once(root.join(train))
                .chain(groups.as_ref().map(|g| root.join(g)))
                .collect(),
        }
    }

    /// The number of classes, known without loading the images (Tiny
    /// ImageNet: the lines of `wnids.txt`); `None` where that file cannot
    /// be read now.
    pub fn num_classes(&self) -> Option<usize> {
        match self {
            DatasetSpec::Synthetic { classes, .. } => Some(*classes),
            DatasetSpec::Cifar10 { .. } => Some(10),
            DatasetSpec::Cifar100 { .. } => Some(100),
            DatasetSpec::TinyImagenet { root, .. } => {
                std::fs::read_to_string(root.join("wnids.txt"))
                    .ok()
                    .map(|t| t.lines().filter(|l| !l.trim().is_empty()).count())
            }
            DatasetSpec::Fmow { .. } => Some(fmow::CATEGORIES.len()),
            DatasetSpec::ImageFolder {
                root,
                train,
                test,
                val,
                ..
            } => image_folder::list(root, train, test, val.as_deref())
                .ok()
                .map(|l| l.classes.len()),
        }
    }

    /// Images per class of the test split (`test`) or the training split,
    /// known without decoding images: from the spec for synthetic data, from
    /// the label bytes for CIFAR (per-class caps applied). `None` for the
    /// other datasets, or where the files cannot be read now.
    pub fn class_counts(&self, test: bool) -> Option<Vec<usize>> {
        let capped = |mut counts: Vec<usize>, cap: &Option<usize>| {
            if let Some(cap) = cap {
                counts.iter_mut().for_each(|c| *c = (*c).min(*cap));
            }
            counts
        };
        match self {
            DatasetSpec::Synthetic {
                classes,
                train_per_class,
                test_per_class,
                ..
            } => Some(vec![
                if test {
                    *test_per_class
                } else {
                    *train_per_class
                };
                *classes
            ]),
            DatasetSpec::Cifar10 {
                root,
                records_per_file,
                train_per_class,
                test_per_class,
                swap_splits,
                ..
            } => {
                cifar::label_counts(root, false, test != *swap_splits, *records_per_file).map(|c| {
                    capped(
                        c,
                        if test {
                            test_per_class
                        } else {
                            train_per_class
                        },
                    )
                })
            }
            DatasetSpec::Cifar100 {
                root,
                records_per_file,
                train_per_class,
                test_per_class,
                ..
            } => cifar::label_counts(root, true, test, *records_per_file).map(|c| {
                capped(
                    c,
                    if test {
                        test_per_class
                    } else {
                        train_per_class
                    },
                )
            }),
            _ => None,
        }
    }

    /// The training augmentation a grid gets when it names none: random
    /// crop (padding 4) and flip, Mammoth's convention; none for FMoW,
    /// whose reference (WILDS' ERM) trains without augmentation.
    pub fn default_augment(&self) -> crate::transform::Augment {
        match self {
            // A researcher's own images: no assumption about what they allow.
            DatasetSpec::Fmow { .. } | DatasetSpec::ImageFolder { .. } => {
                crate::transform::Augment::NONE
            }
            _ => crate::transform::Augment::STANDARD,
        }
    }

    /// Pixels a side of the (square) images this spec loads.
    pub fn image_size(&self) -> usize {
        match self {
            DatasetSpec::Synthetic { .. } => crate::synthetic::SIZE,
            DatasetSpec::Cifar10 { image_size, .. } | DatasetSpec::Cifar100 { image_size, .. } => {
                image_size.unwrap_or(cifar::SIZE)
            }
            DatasetSpec::TinyImagenet { image_size, .. }
            | DatasetSpec::Fmow { image_size, .. }
            | DatasetSpec::ImageFolder { image_size, .. } => *image_size,
        }
    }

    pub fn short_name(&self) -> &'static str {
        match self {
            DatasetSpec::Synthetic { .. } => "synthetic",
            DatasetSpec::Cifar10 { .. } => "cifar10",
            DatasetSpec::Cifar100 { .. } => "cifar100",
            DatasetSpec::TinyImagenet { .. } => "tiny-imagenet",
            DatasetSpec::Fmow { .. } => "fmow",
            DatasetSpec::ImageFolder { .. } => "image-folder",
        }
    }
}

/// Loads (or generates) the dataset a spec names.
pub fn load_dataset(spec: &DatasetSpec) -> Result<TrainTest, DataError> {
    let cap =
        |mut set: TrainTest, train: &Option<usize>, test: &Option<usize>, seed: &Option<u64>| {
            let keep = |s: &ImageSet, n: usize| match seed {
                Some(seed) => s.sample_per_class(n, *seed),
                None => s.cap_per_class(n),
            };
            if let Some(n) = train {
                set.train = keep(&set.train, *n);
            }
            if let Some(n) = test {
                set.test = keep(&set.test, *n);
                set.validation = set.validation.map(|v| keep(&v, *n));
            }
            set
        };
    match spec {
        DatasetSpec::Synthetic {
            classes,
            train_per_class,
            test_per_class,
            seed,
        } => synthetic::generate(*classes, *train_per_class, *test_per_class, *seed),
        DatasetSpec::Cifar10 {
            root,
            records_per_file,
            train_per_class,
            test_per_class,
            subset_seed,
            swap_splits,
            image_size,
        } => {
            let size = cifar_size(*image_size)?;
            let mut data = cifar::load_cifar10_first(root, *records_per_file)?;
            if *swap_splits {
                std::mem::swap(&mut data.train, &mut data.test);
            }
            Ok(cap(data, train_per_class, test_per_class, subset_seed).resized(size))
        }
        DatasetSpec::Cifar100 {
            root,
            records_per_file,
            train_per_class,
            test_per_class,
            subset_seed,
            image_size,
        } => {
            let size = cifar_size(*image_size)?;
            let data = cifar::load_cifar100_first(root, *records_per_file)?;
            Ok(cap(data, train_per_class, test_per_class, subset_seed).resized(size))
        }
        DatasetSpec::TinyImagenet {
            root,
            image_size,
            train_per_class,
            test_per_class,
            subset_seed,
            cache_dir,
        } => {
            let (data, _) =
                tiny_imagenet::load_tiny_imagenet(root, *image_size, cache_dir.as_deref())?;
            Ok(cap(data, train_per_class, test_per_class, subset_seed))
        }
        DatasetSpec::Fmow {
            root,
            image_size,
            split,
            train_per_class,
            test_per_class,
            subset_seed,
        } => Ok(cap(
            fmow::load_fmow(root, *image_size, *split)?,
            train_per_class,
            test_per_class,
            subset_seed,
        )),
        DatasetSpec::ImageFolder {
            root,
            train,
            test,
            val,
            image_size,
            mean,
            std,
            train_per_class,
            test_per_class,
            subset_seed,
            cache_dir,
            groups,
        } => {
            let normalization = match (mean, std) {
                (Some(mean), Some(std)) => Normalization {
                    mean: *mean,
                    std: *std,
                },
                _ => Normalization::IMAGENET,
            };
            let data = image_folder::load_image_folder(
                root,
                (train, test, val.as_deref()),
                *image_size,
                normalization,
                cache_dir.as_deref(),
                groups.as_deref(),
            )?;
            Ok(cap(data, train_per_class, test_per_class, subset_seed))
        }
    }
}

impl DatasetSpec {
    /// What can be checked without decoding images: an image folder's tree
    /// (every split has the training split's classes, every class folder
    /// holds image files only) and its statistics. The message names the
    /// path or the key.
    pub fn check(&self) -> Result<(), DataError> {
        match self {
            DatasetSpec::ImageFolder {
                root,
                train,
                test,
                val,
                mean,
                std,
                groups,
                ..
            } => {
                if mean.is_some() != std.is_some() {
                    return Err(DataError::Config(
                        "image-folder: give `mean` and `std` together".into(),
                    ));
                }
                if let Some(std) = std
                    && std.iter().any(|s| s.is_nan() || *s <= 0.0)
                {
                    return Err(DataError::Config(format!(
                        "image-folder: every `std` must be > 0, got {std:?}"
                    )));
                }
                let listing = image_folder::list(root, train, test, val.as_deref())?;
                if let Some(g) = groups {
                    image_folder::read_groups(root, g, &listing)?;
                }
                Ok(())
            }
            _ => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::transform::Augment;

    #[test]
    fn fmow_trains_without_augmentation_by_default() {
        let fmow: DatasetSpec = serde_json::from_str(r#"{"name": "fmow", "root": "x"}"#).unwrap();
        assert_eq!(fmow.default_augment(), Augment::NONE);
        let cifar: DatasetSpec =
            serde_json::from_str(r#"{"name": "cifar10", "root": "x"}"#).unwrap();
        assert_eq!(cifar.default_augment(), Augment::STANDARD);
        assert_eq!(fmow.num_classes(), Some(62));
    }

    fn spec(json: &str) -> DatasetSpec {
        serde_json::from_str(json).unwrap()
    }

    fn same(a: &ImageSet, b: &ImageSet) -> bool {
        a.labels == b.labels && (0..a.len()).all(|i| a.image(i) == b.image(i))
    }

    /// `records_per_file: N` on the full files gives exactly the images of
    /// a copy cut as `../shared/datasets` is (the first N records of each
    /// file), and counts what validation counts; more than a file holds is
    /// an error naming the file.
    #[test]
    fn records_per_file_on_full_files_equals_the_cut_copy() {
        let dir = tempfile::tempdir().unwrap();
        let full = dir.path().join("full");
        let cut = dir.path().join("cut");
        cifar::write_cifar10_fixture(&full, 6, 2).unwrap();
        std::fs::create_dir_all(&cut).unwrap();
        for f in cifar::CIFAR10_TRAIN_FILES
            .iter()
            .chain([&cifar::CIFAR10_TEST_FILE])
        {
            let bytes = std::fs::read(full.join(f)).unwrap();
            std::fs::write(cut.join(f), &bytes[..17 * 3073]).unwrap();
        }
        let root = |p: &std::path::Path| p.display().to_string();
        let a = load_dataset(&spec(&format!(
            r#"{{"name": "cifar10", "root": "{}", "records_per_file": 17}}"#,
            root(&full)
        )))
        .unwrap();
        let b = load_dataset(&spec(&format!(
            r#"{{"name": "cifar10", "root": "{}"}}"#,
            root(&cut)
        )))
        .unwrap();
        assert_eq!(a.train.len(), 5 * 17);
        assert!(same(&a.train, &b.train) && same(&a.test, &b.test));
        let with_n = spec(&format!(
            r#"{{"name": "cifar10", "root": "{}", "records_per_file": 17}}"#,
            root(&full)
        ));
        let counted: usize = with_n.class_counts(false).unwrap().iter().sum();
        assert_eq!(counted, 5 * 17);
        let err = load_dataset(&spec(&format!(
            r#"{{"name": "cifar10", "root": "{}", "records_per_file": 18}}"#,
            root(&cut)
        )))
        .unwrap_err()
        .to_string();
        assert!(
            err.contains("data_batch_1.bin") && err.contains("holds 17 records"),
            "{err}"
        );
    }

    /// `image_size` on CIFAR resizes every split (bilinear): the labels stay,
    /// a flat image stays flat, an edge stays where it was (scaled); the
    /// spec reports the new size; an impossible size is refused before any
    /// file is read.
    #[test]
    fn cifar_image_size_resizes_every_split() {
        let dir = tempfile::tempdir().unwrap();
        cifar::write_cifar10_fixture(dir.path(), 6, 2).unwrap();
        let root = dir.path().display();
        let native = load_dataset(&spec(&format!(
            r#"{{"name": "cifar10", "root": "{root}"}}"#
        )))
        .unwrap();
        let big = spec(&format!(
            r#"{{"name": "cifar10", "root": "{root}", "image_size": 96}}"#
        ));
        assert_eq!(big.image_size(), 96);
        let big = load_dataset(&big).unwrap();
        assert_eq!((big.train.height, big.train.width), (96, 96));
        assert_eq!((big.test.height, big.test.width), (96, 96));
        assert_eq!(big.train.labels, native.train.labels);
        assert_eq!(big.train.image(0).len(), 3 * 96 * 96);
        // A flat 32x32 image resizes to the same flat value; a left/right
        // split at column 16 lands at column 48.
        let mut set = ImageSet::empty(3, 32, 32);
        let mut image = vec![0u8; 3 * 32 * 32];
        for (i, px) in image.iter_mut().enumerate() {
            *px = if i % 32 < 16 { 10 } else { 200 };
        }
        set.push(&image, 0);
        let up = set.resized(96);
        let row = &up.image(0)[..96];
        assert!(row[..40].iter().all(|&v| v == 10), "{:?}", &row[..48]);
        assert!(row[56..].iter().all(|&v| v == 200), "{:?}", &row[48..]);
        let err = load_dataset(&spec(&format!(
            r#"{{"name": "cifar100", "root": "{root}/missing", "image_size": 0}}"#
        )))
        .unwrap_err()
        .to_string();
        assert!(err.contains("image_size") && err.contains("got 0"), "{err}");
    }

    /// `train_per_class` on Tiny ImageNet takes images by their number, so
    /// the full set capped at N is the subset that kept images 0..N-1.
    #[test]
    fn tiny_imagenet_cap_takes_the_first_numbered_images() {
        let dir = tempfile::tempdir().unwrap();
        let full = dir.path().join("full");
        let cut = dir.path().join("cut");
        crate::tiny_imagenet::write_tiny_imagenet_fixture(&full, 3, 12, 2).unwrap();
        crate::tiny_imagenet::write_tiny_imagenet_fixture(&cut, 3, 12, 2).unwrap();
        for w in std::fs::read_to_string(cut.join("wnids.txt"))
            .unwrap()
            .lines()
        {
            for k in 5..12 {
                std::fs::remove_file(cut.join(format!("train/{w}/images/{w}_{k}.JPEG"))).unwrap();
            }
        }
        let load = |root: &std::path::Path, cap: &str| {
            load_dataset(&spec(&format!(
                r#"{{"name": "tiny-imagenet", "root": "{}", "cache_dir": "{}"{cap}}}"#,
                root.display(),
                root.join("cache").display()
            )))
            .unwrap()
        };
        let a = load(&full, r#", "train_per_class": 5"#);
        let b = load(&cut, "");
        assert_eq!(a.train.len(), 15);
        assert!(same(&a.train, &b.train));
    }

    /// A seeded per-class choice: N of each class, in the original order,
    /// the same for the same seed, another for another seed.
    #[test]
    fn subset_seed_chooses_per_class_at_random_and_reproducibly() {
        let data = crate::synthetic::generate(4, 20, 2, 0).unwrap();
        let a = data.train.sample_per_class(5, 1);
        let again = data.train.sample_per_class(5, 1);
        let other = data.train.sample_per_class(5, 2);
        let first = data.train.cap_per_class(5);
        for c in 0..4 {
            assert_eq!(a.labels.iter().filter(|&&l| l == c).count(), 5);
        }
        assert!(same(&a, &again));
        assert!(!same(&a, &other) && !same(&a, &first));
        // Original order: each kept image appears in the order it had.
        let pos = |s: &ImageSet, i: usize| {
            (0..data.train.len())
                .find(|&j| data.train.image(j) == s.image(i))
                .unwrap()
        };
        assert!((1..a.len()).all(|i| pos(&a, i - 1) < pos(&a, i)));
        // A class's choice does not depend on the others being there.
        let only_class_2 = data.train.select_classes(&|l| (l == 2).then_some(2));
        let alone = only_class_2.sample_per_class(5, 1);
        let in_a = a.select_classes(&|l| (l == 2).then_some(2));
        assert!(same(&alone, &in_a));
    }
}
