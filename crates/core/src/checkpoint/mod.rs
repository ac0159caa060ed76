//! Backbone weights in and out, through burn-store: the harness's own
//! safetensors checkpoints (this file; batch-norm running statistics
//! included) and the import of torchvision checkpoints (`torchvision.rs`).

pub mod torchvision;

pub use torchvision::{
    ImportOptions, LoadReport, convert_torchvision, import_torchvision, import_vit,
};

use std::path::Path;

use burn::module::Module;
use burn::nn::Linear;
use burn::store::{ModuleSnapshot, SafetensorsStore};

use crate::backbone::{Backbone, BackboneConfig};
use crate::error::CoreError;

fn err(path: &Path, message: impl Into<String>) -> CoreError {
    CoreError::Checkpoint {
        path: path.to_path_buf(),
        message: message.into(),
    }
}

/// Writes `backbone` to `path` (atomically: a temporary file, then a rename).
/// The tensors keep their module's own names (a ResNet's are torchvision's
/// but for the shortcut), so checkpoints from before the ViT stay readable.
pub fn save_backbone(
    backbone: &Backbone,
    config: &BackboneConfig,
    path: &Path,
) -> Result<(), CoreError> {
    let arch = ("reusebench.arch", format!("{:?}", config.arch));
    match backbone {
        Backbone::ResNet(r) => save_module(
            r,
            &[arch, ("reusebench.width", config.width.to_string())],
            path,
        ),
        Backbone::Vit(v) => save_module(v, &[arch, ("reusebench.vit", vit_shape(config))], path),
    }
}

/// A ViT config's shape as the checkpoint metadata records it.
fn vit_shape(config: &BackboneConfig) -> String {
    match config.vit_spec() {
        Ok(Some(s)) => format!(
            "patch {} dim {} depth {} heads {} mlp {} image {}",
            s.patch, s.dim, s.depth, s.heads, s.mlp_dim, s.image_size
        ),
        _ => String::new(),
    }
}

/// Writes a classifier's linear head to `path` (its own safetensors file,
/// beside the backbone's), with its shape in the metadata.
pub fn save_head(head: &Linear, path: &Path) -> Result<(), CoreError> {
    let [features, classes] = head.weight.dims();
    save_module(
        head,
        &[
            ("reusebench.module", "linear-head".to_string()),
            ("reusebench.features", features.to_string()),
            ("reusebench.classes", classes.to_string()),
        ],
        path,
    )
}

/// Loads a head written by [`save_head`] into `head`, which must have the
/// same shape.
pub fn load_head(head: Linear, path: &Path) -> Result<Linear, CoreError> {
    load_module(head, path, "the configured head (check classes and width)")
}

pub(crate) fn save_module<M: Module>(
    module: &M,
    metadata: &[(&str, String)],
    path: &Path,
) -> Result<(), CoreError> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|e| err(path, e.to_string()))?;
    }
    let tmp = path.with_extension("safetensors.tmp");
    let mut store = SafetensorsStore::from_file(&tmp);
    for (k, v) in metadata {
        store = store.metadata(*k, v.clone());
    }
    // `valid()` first: burn-store reads batch-norm running statistics
    // without syncing them, so a module straight out of training would be
    // saved with stale statistics; the validation snapshot holds synced ones.
    module
        .valid()
        .save_into(&mut store)
        .map_err(|e| err(path, e.to_string()))?;
    sort_metadata_keys(&tmp).map_err(|message| err(path, message))?;
    std::fs::rename(&tmp, path).map_err(|e| err(path, e.to_string()))
}

/// Rewrites the header of the safetensors file at `path` with its
/// `__metadata__` keys in sorted order. burn-store hands the metadata to
/// safetensors in a hash map, so the same weights came out in other bytes
/// on every save, and a cell that reads the checkpoint saw its input's
/// digest change when the pretraining was rerun. Only the order changes,
/// so the header keeps its length and is overwritten in place.
fn sort_metadata_keys(path: &Path) -> Result<(), String> {
    use std::io::{Seek, SeekFrom, Write};
    let mut file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(path)
        .map_err(|e| e.to_string())?;
    let text = read_header(&mut file).ok_or("not a safetensors file")?;
    let mut header: serde_json::Map<String, serde_json::Value> =
        serde_json::from_slice(&text).map_err(|e| e.to_string())?;
    if let Some(serde_json::Value::Object(meta)) = header.get_mut("__metadata__") {
        meta.sort_keys();
    }
    let mut sorted = serde_json::to_vec(&header).map_err(|e| e.to_string())?;
    if sorted.len() > text.len() {
        return Err("the sorted header is longer than the written one".into());
    }
    // safetensors pads its header with spaces; the data offsets are relative
    // to the header's end, which stays where it was.
    sorted.resize(text.len(), b' ');
    file.seek(SeekFrom::Start(8))
        .and_then(|_| file.write_all(&sorted))
        .map_err(|e| e.to_string())
}

/// The JSON header of the safetensors file open in `file` (read from its
/// start, padding included), or None where the file is not one.
fn read_header(file: &mut std::fs::File) -> Option<Vec<u8>> {
    use std::io::Read;
    let mut len = [0u8; 8];
    file.read_exact(&mut len).ok()?;
    let len = u64::from_le_bytes(len);
    let size = file.metadata().map(|m| m.len()).unwrap_or(0);
    if len == 0 || len > size.saturating_sub(8) || len > 100 << 20 {
        return None;
    }
    let mut text = vec![0u8; len as usize];
    file.read_exact(&mut text).ok()?;
    Some(text)
}

/// Reads the header of the harness checkpoint at `path` (no tensor data)
/// and checks it against `config`: the architecture and width it was saved
/// with, and the shape of the first convolution. A message on mismatch.
pub fn check_header(config: &BackboneConfig, path: &Path) -> Result<(), String> {
    let mut file = std::fs::File::open(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let not_safetensors = || format!("{} is not a safetensors file", path.display());
    let text = read_header(&mut file).ok_or_else(not_safetensors)?;
    let header: serde_json::Value = serde_json::from_slice(&text).map_err(|_| not_safetensors())?;
    let meta = header.get("__metadata__");
    let field = |k: &str| meta.and_then(|m| m.get(k)).and_then(|v| v.as_str());
    let (arch, width) = (format!("{:?}", config.arch), config.width.to_string());
    if config.arch.is_vit() {
        let shape = vit_shape(config);
        return match (field("reusebench.arch"), field("reusebench.vit")) {
            (Some(saved_arch), Some(saved)) if saved_arch != arch || saved != shape => {
                Err(format!(
                    "{} holds a {saved_arch} ({saved}), the config asks for a {arch} ({shape})",
                    path.display()
                ))
            }
            (Some(saved_arch), None) if saved_arch != arch => Err(format!(
                "{} holds a {saved_arch}, the config asks for a {arch}",
                path.display()
            )),
            _ => Ok(()),
        };
    }
    if let (Some(saved_arch), Some(saved_width)) =
        (field("reusebench.arch"), field("reusebench.width"))
        && (saved_arch != arch || saved_width != width)
    {
        return Err(format!(
            "{} holds a {saved_arch} of width {saved_width}, the config asks for a {arch} of width {width}",
            path.display()
        ));
    }
    // The stem's weight is [width, 3, k, k], whatever the metadata says.
    if let Some(shape) = header
        .get("conv1.weight")
        .and_then(|t| t.get("shape"))
        .and_then(|s| s.as_array())
        && shape.first().and_then(|w| w.as_u64()) != Some(config.width as u64)
    {
        return Err(format!(
            "{}: conv1.weight has shape {shape:?}, width {width} needs {width} output channels",
            path.display()
        ));
    }
    Ok(())
}

/// Loads weights from `path` into `backbone`. Every tensor must be present
/// with the right shape: a partial load is an error that names the keys.
pub fn load_backbone(backbone: Backbone, path: &Path) -> Result<Backbone, CoreError> {
    Ok(match backbone {
        Backbone::ResNet(r) => Backbone::ResNet(load_module(
            r,
            path,
            "the configured backbone (check arch and width)",
        )?),
        Backbone::Vit(v) => Backbone::Vit(load_module(
            v,
            path,
            "the configured ViT (check its patch, dim, depth, heads, mlp_ratio and image_size)",
        )?),
    })
}

pub(crate) fn load_module<M: Module>(
    mut module: M,
    path: &Path,
    what: &str,
) -> Result<M, CoreError> {
    if !path.is_file() {
        return Err(err(path, "file not found"));
    }
    let mut store = SafetensorsStore::from_file(path);
    let result = module
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
        Ok(module)
    } else {
        Err(err(
            path,
            format!("does not match {what}: {}", problems.join("; ")),
        ))
    }
}
