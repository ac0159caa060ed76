//! Backbone weights in and out, through burn-store: the harness's own
//! safetensors checkpoints (this file; batch-norm running statistics
//! included) and the import of torchvision checkpoints (`torchvision.rs`).

pub mod torchvision;

pub use torchvision::{ImportOptions, LoadReport, convert_torchvision, import_torchvision};

use std::path::Path;

use burn::module::Module;
use burn::store::{ModuleSnapshot, SafetensorsStore};

use crate::backbone::{BackboneConfig, ResNet};
use crate::error::CoreError;

fn err(path: &Path, message: impl Into<String>) -> CoreError {
    CoreError::Checkpoint {
        path: path.to_path_buf(),
        message: message.into(),
    }
}

/// Writes `backbone` to `path` (atomically: a temporary file, then a rename).
pub fn save_backbone(
    backbone: &ResNet,
    config: &BackboneConfig,
    path: &Path,
) -> Result<(), CoreError> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|e| err(path, e.to_string()))?;
    }
    let tmp = path.with_extension("safetensors.tmp");
    let mut store = SafetensorsStore::from_file(&tmp)
        .metadata("reusebench.arch", format!("{:?}", config.arch))
        .metadata("reusebench.width", config.width.to_string());
    // `valid()` first: burn-store reads batch-norm running statistics
    // without syncing them, so a module straight out of training would be
    // saved with stale statistics; the validation snapshot holds synced ones.
    backbone
        .valid()
        .save_into(&mut store)
        .map_err(|e| err(path, e.to_string()))?;
    std::fs::rename(&tmp, path).map_err(|e| err(path, e.to_string()))
}

/// Loads weights from `path` into `backbone`. Every tensor must be present
/// with the right shape: a partial load is an error that names the keys.
pub fn load_backbone(mut backbone: ResNet, path: &Path) -> Result<ResNet, CoreError> {
    if !path.is_file() {
        return Err(err(path, "file not found"));
    }
    let mut store = SafetensorsStore::from_file(path);
    let result = backbone
        .load_from(&mut store)
        .map_err(|e| err(path, e.to_string()))?;
    let mut problems = Vec::new();
    if !result.errors.is_empty() {
        problems.push(format!("errors: {:?}", result.errors));
    }
    if !result.missing.is_empty() {
        let keys: Vec<&str> = result.missing.iter().map(|(k, _)| k.as_str()).collect();
        problems.push(format!("missing: {}", keys.join(", ")));
    }
    if !result.unused.is_empty() {
        problems.push(format!("unused: {}", result.unused.join(", ")));
    }
    if problems.is_empty() {
        Ok(backbone)
    } else {
        Err(err(
            path,
            format!(
                "does not match the configured backbone (check arch and width): {}",
                problems.join("; ")
            ),
        ))
    }
}
