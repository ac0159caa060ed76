//! What a protocol is to the rest of reusebench. A protocol names its
//! config type, checks it before anything runs, and runs one cell of it
//! into metric rows; the runner registers it with one line and adds each
//! cell's identity to its rows. [`RunEnv`] holds what every protocol needs.

use std::fmt::Debug;
use std::path::{Path, PathBuf};

use burn::tensor::Device;
use rand_chacha::ChaCha8Rng;
use reusebench_data::{DatasetSpec, Split, TrainTest, Validation, hold_out, load_dataset};
use reusebench_seeds::{Purpose, Seeds};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::backbone::BackboneConfig;
use crate::checkpoint::{ImportOptions, import_torchvision, load_backbone};
use crate::device::DeviceSpec;
use crate::error::CoreError;
use crate::metrics::MetricRow;
use crate::model::{Classifier, build_backbone, linear_head};
use crate::progress::Progress;
use crate::shared::SharedResults;
use crate::train::CurveLog;

/// One research protocol (pretrain, continual, ...).
pub trait Protocol: 'static {
    /// The name grids give in `protocol:`.
    const NAME: &'static str;
    /// The cell's configuration, deserialised from the grid (unknown keys
    /// rejected by the type itself). It has a `seed` key, a whole number:
    /// the runner reads it to name and store the cell. Serialised with
    /// every default applied, it is what the cell's identity hashes.
    type Config: Serialize + DeserializeOwned + Debug + Send + Sync + 'static;
    /// The metric a `tune:` block selects on when the grid names none (a
    /// scalar row of the cell, higher is better unless the grid says
    /// `direction: min`).
    const OBJECTIVE: &'static str;

    /// Evaluation-only keys a `tune:` trial turns off (sets to null), with
    /// the prefix of the metrics each produces: a trial is scored on its
    /// objective alone, so evaluation that cannot feed it is skipped
    /// (continual's kNN and adaptation). A key stays on when the objective
    /// is one of its metrics.
    const TRIAL_SKIPS: &'static [(&'static str, &'static str)] = &[];

    /// Everything that can be checked without training: ranges, consistency,
    /// the class count of the dataset, checkpoint headers. Errors carry the
    /// key (`CoreError::Config { key, .. }`) so that the grid names its line.
    fn validate(_config: &Self::Config, _checks: &Checks) -> Result<(), CoreError> {
        Ok(())
    }
    /// The method column of the cell's rows.
    fn method(_config: &Self::Config) -> String {
        Self::NAME.to_string()
    }
    /// Files the cell reads.
    fn inputs(_config: &Self::Config) -> Vec<PathBuf> {
        Vec::new()
    }
    /// Files the cell writes that later cells may read.
    fn outputs(_config: &Self::Config) -> Vec<PathBuf> {
        Vec::new()
    }
    fn run(config: &Self::Config, env: &RunEnv) -> Result<Vec<MetricRow>, CoreError>;
}

/// What validation may know about the grid beyond one cell.
pub struct Checks<'a> {
    /// Files an earlier cell of the grid will write: they need not exist
    /// yet, and what is on disk now is not what the cell will read.
    pub produced: &'a dyn Fn(&Path) -> bool,
}

impl Checks<'_> {
    /// No other cells (a config checked on its own).
    pub fn standalone() -> Checks<'static> {
        Checks {
            produced: &|_| false,
        }
    }

    /// What a dataset spec allows checking without decoding images (an
    /// image folder's tree), as an error at `key`.
    pub fn data(&self, spec: &DatasetSpec, key: &str) -> Result<(), CoreError> {
        spec.check()
            .map_err(|e| CoreError::config(key, e.to_string()))
    }

    /// The backbone's settings and, for a harness checkpoint on disk now
    /// that no earlier cell overwrites, its header against the architecture.
    /// `image_size`: the side of the images the backbone will see.
    pub fn backbone(
        &self,
        config: &BackboneConfig,
        key: &str,
        image_size: usize,
    ) -> Result<(), CoreError> {
        config.validate().map_err(|e| prefix_key(e, key))?;
        if let Some(vit) = config.vit_spec()?
            && vit.image_size != image_size
        {
            return Err(CoreError::config(
                &format!("{key}.image_size"),
                format!(
                    "the ViT's position embeddings are for {} px images, the data gives {image_size} px: \
                     set image_size: {image_size} (torchvision `weights` for another size are resampled on import)",
                    vit.image_size
                ),
            ));
        }
        if let Some(path) = &config.checkpoint
            && path.is_file()
            && !(self.produced)(path)
        {
            crate::checkpoint::check_header(config, path)
                .map_err(|m| CoreError::config(&format!("{key}.checkpoint"), m))?;
        }
        Ok(())
    }
}

/// What a cell that loads `data` and `backbone` reads: the dataset's
/// files, the backbone's checkpoint, and `head` (a trained head) if any.
pub fn model_inputs<'a>(
    data: &DatasetSpec,
    backbone: &BackboneConfig,
    head: impl IntoIterator<Item = &'a PathBuf>,
) -> Vec<PathBuf> {
    let mut v = data.required_paths();
    v.extend(backbone.files());
    v.extend(head.into_iter().cloned());
    v
}

/// `backbone.width` for an error raised as `width` inside a config at `key`.
pub fn prefix_key(e: CoreError, key: &str) -> CoreError {
    match e {
        CoreError::Config { key: k, message } if !key.is_empty() => {
            let k = k.strip_prefix("backbone.").unwrap_or(&k);
            CoreError::Config {
                key: if k.is_empty() {
                    key.to_string()
                } else {
                    format!("{key}.{k}")
                },
                message,
            }
        }
        other => other,
    }
}

/// Which images a cell holds out of training and which split it is
/// scored on: the grid keys `validation:` and `split:` of every protocol,
/// applied where the dataset is loaded.
#[derive(Debug, Clone, Default, PartialEq, Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HeldOut {
    #[serde(default)]
    pub validation: Validation,
    #[serde(default)]
    pub split: Split,
}

/// What a protocol's run gets from the runner.
pub struct RunEnv<'a> {
    pub device: DeviceSpec,
    pub progress: &'a dyn Progress,
    /// Every training stage's per-epoch curve; the runner stores it with the rows.
    pub curves: CurveLog,
    /// The validation split and the split the cell is scored on.
    pub held_out: HeldOut,
    /// Where the grid keeps values its cells share (none outside a grid:
    /// everything is computed).
    pub shared: Option<SharedResults>,
}

impl<'a> RunEnv<'a> {
    pub fn new(device: DeviceSpec, progress: &'a dyn Progress) -> Self {
        Self {
            device,
            progress,
            curves: CurveLog::default(),
            held_out: HeldOut::default(),
            shared: None,
        }
    }

    /// This environment scoring on `held_out`'s split.
    pub fn with_held_out(mut self, held_out: HeldOut) -> Self {
        self.held_out = held_out;
        self
    }

    /// This environment sharing method-independent values through `shared`.
    pub fn with_shared(mut self, shared: SharedResults) -> Self {
        self.shared = Some(shared);
        self
    }

    /// The autodiff training device, with the backend's own generator
    /// seeded (dropout, anything burn draws itself).
    pub fn train_device(&self, seed: u64) -> Result<Device, CoreError> {
        let plain = self.device.device()?;
        plain.seed(seed);
        Ok(plain.autodiff())
    }

    /// The random stream for `purpose` of a cell with `seed`.
    pub fn rng(&self, seed: u64, purpose: Purpose) -> ChaCha8Rng {
        Seeds::new(seed).rng(purpose)
    }

    /// Loads the dataset, holds its validation split out of training and
    /// checks a class list against it; all classes when `classes` is
    /// absent. `test` is the split the cell is scored on: the validation
    /// images in a cell scored on `validation` (the test images are not
    /// kept then).
    pub fn load_dataset(
        &self,
        spec: &DatasetSpec,
        classes: &Option<Vec<u32>>,
    ) -> Result<(TrainTest, Vec<u32>), CoreError> {
        let data = hold_out(
            load_dataset(spec)?,
            &self.held_out.validation,
            self.held_out.split,
        )?;
        let classes = match classes {
            Some(c) => c.clone(),
            None => (0..data.num_classes as u32).collect(),
        };
        check_classes(&classes, data.num_classes, &data.name)?;
        Ok((data, classes))
    }

    /// A classifier whose backbone comes from `config` (random, a harness
    /// checkpoint or torchvision weights) and whose head has `classes`
    /// outputs (fresh, or torchvision's `fc` with `keep_head`); weights
    /// from `seed` alone.
    pub fn build_classifier(
        &self,
        config: &BackboneConfig,
        classes: usize,
        seed: u64,
        device: &Device,
    ) -> Result<Classifier, CoreError> {
        let mut backbone = build_backbone(config, &mut self.rng(seed, Purpose::Backbone), device);
        let mut head = linear_head(
            &mut self.rng(seed, Purpose::Head),
            config.feature_dim(),
            classes,
            device,
        );
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
            self.progress
                .note(&format!("weights {}: {report}", path.display()));
            backbone = b;
            head = h.expect("the head passed in comes back");
        }
        Ok(Classifier::new(backbone, head))
    }
}

/// Every class of `classes` exists in a dataset of `num_classes`.
pub fn check_classes(classes: &[u32], num_classes: usize, dataset: &str) -> Result<(), CoreError> {
    if let Some(bad) = classes.iter().find(|&&c| c as usize >= num_classes) {
        return Err(CoreError::config(
            "classes",
            format!("class {bad} does not exist in {dataset} ({num_classes} classes)"),
        ));
    }
    Ok(())
}

pub fn default_batch_size() -> usize {
    32
}

pub fn default_eval_batch_size() -> usize {
    256
}
