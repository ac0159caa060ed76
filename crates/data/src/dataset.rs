//! The dataset selector that grids name, and loading what it names through
//! the loaders (cifar, tiny_imagenet, fmow, synthetic).

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::error::DataError;
use crate::fmow::FmowSplit;
use crate::image_set::TrainTest;
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
        /// Use at most this many training images per class (the first ones).
        #[serde(default)]
        train_per_class: Option<usize>,
        #[serde(default)]
        test_per_class: Option<usize>,
        /// Train on the official test split and take the official training
        /// split as the test split: a model that never saw the larger split
        /// (performative rounds drawn from it, as a pool).
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        swap_splits: bool,
    },
    /// CIFAR-100, official binary version (fine labels).
    Cifar100 {
        root: PathBuf,
        #[serde(default)]
        train_per_class: Option<usize>,
        #[serde(default)]
        test_per_class: Option<usize>,
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
    },
    /// A researcher's own images, one folder per class (torchvision's
    /// ImageFolder): `root/<train>/<class>/*.{jpg,png}`, the same classes
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
        /// Where the decoded cache goes; `<root>/.reusebench-cache` when absent.
        #[serde(default)]
        cache_dir: Option<PathBuf>,
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
            DatasetSpec::ImageFolder { root, train, .. } => vec![root.join(train)],
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
                train_per_class,
                test_per_class,
                swap_splits,
            } => cifar::label_counts(root, false, test != *swap_splits).map(|c| {
                capped(
                    c,
                    if test {
                        test_per_class
                    } else {
                        train_per_class
                    },
                )
            }),
            DatasetSpec::Cifar100 {
                root,
                train_per_class,
                test_per_class,
            } => cifar::label_counts(root, true, test).map(|c| {
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
            DatasetSpec::Cifar10 { .. } | DatasetSpec::Cifar100 { .. } => 32,
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
    let cap = |mut set: TrainTest, train: &Option<usize>, test: &Option<usize>| {
        if let Some(n) = train {
            set.train = set.train.cap_per_class(*n);
        }
        if let Some(n) = test {
            set.test = set.test.cap_per_class(*n);
            set.validation = set.validation.map(|v| v.cap_per_class(*n));
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
            train_per_class,
            test_per_class,
            swap_splits,
        } => {
            let mut data = cifar::load_cifar10(root)?;
            if *swap_splits {
                std::mem::swap(&mut data.train, &mut data.test);
            }
            Ok(cap(data, train_per_class, test_per_class))
        }
        DatasetSpec::Cifar100 {
            root,
            train_per_class,
            test_per_class,
        } => Ok(cap(
            cifar::load_cifar100(root)?,
            train_per_class,
            test_per_class,
        )),
        DatasetSpec::TinyImagenet {
            root,
            image_size,
            train_per_class,
            test_per_class,
            cache_dir,
        } => {
            let (data, _) =
                tiny_imagenet::load_tiny_imagenet(root, *image_size, cache_dir.as_deref())?;
            Ok(cap(data, train_per_class, test_per_class))
        }
        DatasetSpec::Fmow {
            root,
            image_size,
            split,
            train_per_class,
            test_per_class,
        } => Ok(cap(
            fmow::load_fmow(root, *image_size, *split)?,
            train_per_class,
            test_per_class,
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
            cache_dir,
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
            )?;
            Ok(cap(data, train_per_class, test_per_class))
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
                image_folder::list(root, train, test, val.as_deref()).map(|_| ())
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
}
