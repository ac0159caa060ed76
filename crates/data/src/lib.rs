//! Datasets in their official on-disk formats, class-incremental task splits,
//! train/test transforms and a prefetching batch iterator.
//!
//! Nothing here depends on a tensor library: images leave this crate as
//! `u8` CHW buffers or normalised `f32` batches, so the training crates can
//! change backend without touching data code.

pub mod batch;
pub mod cifar;
pub mod dataset;
pub mod error;
pub mod fmow;
pub mod held_out;
pub mod image_file;
pub mod image_folder;
pub mod image_set;
pub mod parts;
pub mod shift;
pub mod shortcut;
pub mod split;
pub mod synthetic;
pub mod tiny_imagenet;
pub mod transform;

pub use batch::{Batch, BatchIter, BatchPlan};
pub use dataset::{DatasetSpec, load_dataset};
pub use error::DataError;
pub use held_out::{Split, Validation, hold_out};
pub use image_set::{Domain, ImageSet, TrainTest};
pub use split::{DomainTasks, TaskSequence, TaskSplit};
pub use transform::{Augment, Normalization, NormalizationChoice, write_image};
