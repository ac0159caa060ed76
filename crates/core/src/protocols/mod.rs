//! Protocols: what one grid cell runs, configured from YAML. Each protocol
//! takes its config and returns metric rows; the runner adds the cell's
//! identity (id, protocol, method, seed, axes) to every row.

pub mod adaptation;
pub mod continual;
pub mod pretrain;

use std::sync::Arc;

use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use reusebench_data::{DatasetSpec, TrainTest, load_dataset};

use crate::backbone::BackboneConfig;
use crate::checkpoint::{ImportOptions, import_torchvision, load_backbone};
use crate::error::CoreError;
use crate::features::logits;
use crate::metrics::accuracy;
use crate::model::{Classifier, build_backbone, linear_head};
use crate::progress::Progress;
use burn::tensor::Device;
use reusebench_data::{ImageSet, Normalization};

pub(crate) fn default_batch_size() -> usize {
    32
}
pub(crate) fn default_eval_batch_size() -> usize {
    256
}

/// Loads the dataset and checks a class list against it.
pub(crate) fn load_with_classes(
    spec: &DatasetSpec,
    classes: &Option<Vec<u32>>,
) -> Result<(TrainTest, Vec<u32>), CoreError> {
    let data = load_dataset(spec)?;
    let classes = match classes {
        Some(c) => c.clone(),
        None => (0..data.num_classes as u32).collect(),
    };
    if let Some(bad) = classes.iter().find(|&&c| c as usize >= data.num_classes) {
        return Err(CoreError::Config(format!(
            "classes: class {bad} does not exist in {} ({} classes)",
            data.name, data.num_classes
        )));
    }
    Ok((data, classes))
}

/// A classifier whose backbone comes from `config` (random, a harness
/// checkpoint or torchvision weights) and whose head has `classes` outputs
/// (fresh, or torchvision's `fc` with `keep_head`); weights from `seed` alone.
pub(crate) fn build_classifier(
    config: &BackboneConfig,
    classes: usize,
    seed: u64,
    device: &Device,
    progress: &dyn Progress,
) -> Result<Classifier, CoreError> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut backbone = build_backbone(config, &mut rng, device);
    // The head has its own stream: whether the backbone is random or loaded
    // does not change it.
    let mut head_rng = ChaCha8Rng::seed_from_u64(seed ^ 0x005E_ED0F_4EAD);
    let mut head = linear_head(&mut head_rng, config.feature_dim(), classes, device);
    if let Some(path) = &config.checkpoint {
        backbone = load_backbone(backbone, path)?;
    }
    if let Some(path) = &config.weights {
        let options = ImportOptions {
            top_level_key: config.weights_key.clone(),
            keep_head: config.keep_head,
            allow_partial: config.allow_partial,
        };
        let (b, h, report) = import_torchvision(backbone, Some(head), path, &options)?;
        progress.note(&format!("weights {}: {report}", path.display()));
        backbone = b;
        head = h.expect("the head passed in comes back");
    }
    Ok(Classifier::new(backbone, head))
}

/// Top-1 accuracy of `model` on `set`.
pub(crate) fn test_accuracy(
    model: &Classifier,
    set: &Arc<ImageSet>,
    batch_size: usize,
    normalization: Normalization,
    device: &Device,
) -> f64 {
    let out = logits(model, set, batch_size, normalization, device);
    accuracy(&out.values, out.dim, &set.labels)
}
