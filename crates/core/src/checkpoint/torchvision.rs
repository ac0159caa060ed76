//! Import of torchvision-layout ResNet weights (`.pth` / `.pt` pickles and
//! `.safetensors`) through burn-store, with a load report.
//!
//! The backbone has torchvision's parameter names except for the shortcut,
//! which torchvision keeps in an `nn.Sequential` (`downsample.0` = conv,
//! `downsample.1` = batch norm); those two are renamed here. burn-store's
//! PyTorch adapter maps batch-norm `weight`/`bias` to `gamma`/`beta` and
//! transposes linear weights. `num_batches_tracked` has no counterpart in
//! burn (momentum is fixed) and is ignored. A `module.` prefix on every key
//! (checkpoints saved from `nn.DataParallel`) is stripped.

use std::fmt;
use std::path::Path;

use burn::nn::Linear;
use burn::store::burn_pack::Tensor as PackTensor;
use burn::store::{
    ApplyError, ModuleSnapshot, ModuleStore, PyTorchToBurnAdapter, PytorchStore, SafetensorsStore,
};

use rand_chacha::ChaCha8Rng;

use super::save_backbone;
use crate::backbone::vit::Vit;
use crate::backbone::{Backbone, BackboneConfig};
use crate::error::CoreError;

/// How to read a checkpoint.
#[derive(Debug, Clone, Default)]
pub struct ImportOptions {
    /// The dictionary in a `.pth` file that holds the state dict.
    pub top_level_key: Option<String>,
    /// Load `fc.*` into a head instead of dropping it.
    pub keep_head: bool,
    /// Accept missing, unused and mis-shaped tensors (reported, not applied).
    pub allow_partial: bool,
}

/// What an import did, tensor by tensor.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct LoadReport {
    /// Tensors copied into the model (checkpoint names).
    pub applied: Vec<String>,
    /// Model tensors the checkpoint does not have (model paths).
    pub missing: Vec<String>,
    /// Checkpoint tensors nothing in the model takes.
    pub unused: Vec<String>,
    /// `name: expected [..], found [..]`.
    pub mismatched: Vec<String>,
    /// Known to have no counterpart (`num_batches_tracked`).
    pub ignored: Vec<String>,
    /// The checkpoint's classifier tensors, dropped because `keep_head` is off.
    pub dropped_head: Vec<String>,
    /// `module.` stripped from every key.
    pub stripped_prefix: bool,
}

impl LoadReport {
    pub fn is_complete(&self) -> bool {
        self.missing.is_empty() && self.unused.is_empty() && self.mismatched.is_empty()
    }
}

fn list(keys: &[String]) -> String {
    const SHOWN: usize = 8;
    let mut s = keys
        .iter()
        .take(SHOWN)
        .cloned()
        .collect::<Vec<_>>()
        .join(", ");
    if keys.len() > SHOWN {
        s.push_str(&format!(", ... ({} in all)", keys.len()));
    }
    s
}

impl fmt::Display for LoadReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} tensor(s) applied", self.applied.len())?;
        if self.stripped_prefix {
            write!(f, " (`module.` prefix stripped)")?;
        }
        for (what, keys) in [
            ("missing in the checkpoint", &self.missing),
            ("unused", &self.unused),
            ("shape mismatch", &self.mismatched),
            ("head dropped", &self.dropped_head),
        ] {
            if !keys.is_empty() {
                write!(f, "; {what}: {}", list(keys))?;
            }
        }
        if !self.ignored.is_empty() {
            write!(f, "; {} num_batches_tracked ignored", self.ignored.len())?;
        }
        Ok(())
    }
}

fn err(path: &Path, message: impl Into<String>) -> CoreError {
    CoreError::Checkpoint {
        path: path.to_path_buf(),
        message: message.into(),
    }
}

/// Every tensor in the file, by name, in file order of names.
pub fn read_tensors(
    path: &Path,
    top_level_key: Option<&str>,
) -> Result<Vec<PackTensor>, CoreError> {
    if !path.is_file() {
        return Err(err(path, "file not found"));
    }
    let ext = path
        .extension()
        .and_then(|e| e.to_str())
        .unwrap_or("")
        .to_ascii_lowercase();
    let tensors: Vec<PackTensor> = match ext.as_str() {
        "safetensors" => {
            if top_level_key.is_some() {
                return Err(err(
                    path,
                    "weights_key applies to .pth/.pt files; safetensors has no nesting",
                ));
            }
            let mut store = SafetensorsStore::from_file(path);
            store
                .get_all_tensors()
                .map_err(|e| err(path, format!("not a readable safetensors file: {e}")))?
                .values()
                .cloned()
                .collect()
        }
        "pth" | "pt" | "bin" | "tar" => {
            // Indices are the model's own (layer1.0, layer1.1): keep them.
            let mut store = PytorchStore::from_file(path).map_indices_contiguous(false);
            if let Some(key) = top_level_key {
                store = store.with_top_level_key(key);
            }
            store
                .get_all_tensors()
                .map_err(|e| err(path, format!("not a readable PyTorch checkpoint: {e}")))?
                .values()
                .cloned()
                .collect()
        }
        _ => {
            return Err(err(
                path,
                "unknown weights format: expected a .pth, .pt or .safetensors file",
            ));
        }
    };
    if tensors.is_empty() {
        return Err(err(
            path,
            "no tensors found (a wrapped checkpoint needs weights_key, e.g. `state_dict`)",
        ));
    }
    Ok(tensors)
}

/// How torchvision's names for one architecture map onto the harness's.
struct Layout {
    /// The classifier's prefix in torchvision's state dict.
    head_prefix: &'static str,
    /// torchvision name -> this harness's module path.
    to_harness: fn(&str) -> String,
    /// Module path -> torchvision name (batch/layer norms' gamma and beta
    /// are mapped back after it), for reports.
    to_torchvision: fn(&str) -> String,
}

/// ResNets: torchvision keeps the shortcut in an `nn.Sequential`.
const RESNET: Layout = Layout {
    head_prefix: "fc.",
    to_harness: |name| {
        name.replace(".downsample.0.", ".downsample.conv.")
            .replace(".downsample.1.", ".downsample.bn.")
    },
    to_torchvision: |path| {
        path.replace(".downsample.conv.", ".downsample.0.")
            .replace(".downsample.bn.", ".downsample.1.")
    },
};

/// Vision transformers: block list and MLP indices (see `backbone::vit`).
const VIT: Layout = Layout {
    head_prefix: "heads.head.",
    to_harness: crate::backbone::vit::harness_name,
    to_torchvision: crate::backbone::vit::torchvision_name,
};

/// Model path (burn names) -> torchvision name, for reports.
fn torchvision_name(path: &str, layout: &Layout) -> String {
    let name = (layout.to_torchvision)(path);
    match name.rsplit_once('.') {
        Some((m, "gamma")) => format!("{m}.weight"),
        Some((m, "beta")) => format!("{m}.bias"),
        _ => name,
    }
}

fn record(
    report: &mut LoadReport,
    result: burn::store::ApplyResult,
    prefix: &str,
    layout: &Layout,
) {
    let name = |p: &str| format!("{prefix}{}", torchvision_name(p, layout));
    report
        .applied
        .extend(result.applied.iter().map(|p| name(p)));
    report
        .missing
        .extend(result.missing.iter().map(|(p, _)| name(p)));
    report.unused.extend(result.unused.iter().map(|p| name(p)));
    for e in &result.errors {
        report.mismatched.push(match e {
            ApplyError::ShapeMismatch {
                path,
                expected,
                found,
            } => format!(
                "{}: model {:?}, checkpoint {:?}",
                name(path),
                expected.as_slice(),
                found.as_slice()
            ),
            other => format!("{prefix}{other}"),
        });
    }
}

/// Loads torchvision-layout weights from `path` into `backbone` (and into
/// `head` when `options.keep_head`). Anything short of a complete load is an
/// error naming the keys unless `options.allow_partial`. A ViT's position
/// embeddings for another image size are resampled to the model's, as
/// torchvision's `interpolate_embeddings` does.
pub fn import_torchvision(
    backbone: Backbone,
    head: Option<Linear>,
    path: &Path,
    options: &ImportOptions,
) -> Result<(Backbone, Option<Linear>, LoadReport), CoreError> {
    match backbone {
        Backbone::ResNet(r) => {
            let tensors = read_tensors(path, options.top_level_key.as_deref())?;
            let (r, head, report) = import_with(r, head, tensors, path, options, &RESNET)?;
            Ok((Backbone::ResNet(r), head, report))
        }
        Backbone::Vit(v) => {
            let (v, head, report) = import_vit(v, head, path, options)?;
            Ok((Backbone::Vit(v), head, report))
        }
    }
}

/// [`import_torchvision`] for torchvision's `VisionTransformer` (`vit_b_16`
/// and smaller ones): its head is `heads.head`.
pub fn import_vit(
    vit: Vit,
    head: Option<Linear>,
    path: &Path,
    options: &ImportOptions,
) -> Result<(Vit, Option<Linear>, LoadReport), CoreError> {
    let mut tensors = read_tensors(path, options.top_level_key.as_deref())?;
    let tokens = vit.encoder.pos_embedding.dims()[1];
    let position = |t: &PackTensor| t.name.trim_start_matches("module.") == "encoder.pos_embedding";
    // Position embeddings for another number of patches: loaded apart and
    // resampled, then set (the rest must match as usual).
    let other_size = tensors
        .iter()
        .position(|t| position(t) && t.shape.as_slice().get(1) != Some(&tokens));
    if let Some(i) = other_size {
        let t = tensors.remove(i);
        let shape = t.shape.as_slice().to_vec();
        let side = ((shape[1].max(1) - 1) as f64).sqrt() as usize;
        if shape.len() != 3 || side * side + 1 != shape[1] || shape[2] != vit.feature_dim() {
            return Err(err(
                path,
                format!(
                    "encoder.pos_embedding has shape {shape:?}: not [1, 1 + n², {}]",
                    vit.feature_dim()
                ),
            ));
        }
        let data = burn::store::bridge::to_data(&t)
            .map_err(|e| err(path, format!("encoder.pos_embedding: {e}")))?;
        // Resampled on a copy at the checkpoint's grid, then loaded as if
        // the file held it at the model's.
        let device = vit.encoder.pos_embedding.device();
        let model_side = ((tokens - 1) as f64).sqrt() as usize;
        let mut at_checkpoint = vit.clone();
        at_checkpoint.encoder.pos_embedding =
            burn::module::Param::from_tensor(burn::tensor::Tensor::from_data(data, &device));
        let resized = at_checkpoint
            .with_image_size(model_side * vit.patch())
            .encoder
            .pos_embedding
            .val()
            .into_data();
        tensors.push(burn::store::bridge::from_data(resized, t.name, None));
    }
    let (vit, head, report) = import_with(vit, head, tensors, path, options, &VIT)?;
    Ok((vit, head, report))
}

fn import_with<M: ModuleSnapshot>(
    mut backbone: M,
    mut head: Option<Linear>,
    mut tensors: Vec<PackTensor>,
    path: &Path,
    options: &ImportOptions,
    layout: &Layout,
) -> Result<(M, Option<Linear>, LoadReport), CoreError> {
    let mut report = LoadReport::default();
    if tensors.iter().all(|t| t.name.starts_with("module.")) {
        report.stripped_prefix = true;
        for t in &mut tensors {
            t.name = t.name["module.".len()..].to_string();
        }
    }

    let (mut body, mut fc) = (Vec::new(), Vec::new());
    for mut t in tensors {
        if t.name.ends_with("num_batches_tracked") {
            report.ignored.push(t.name);
        } else if let Some(param) = t.name.strip_prefix(layout.head_prefix) {
            if options.keep_head {
                t.name = param.to_string();
                fc.push(t);
            } else {
                report.dropped_head.push(t.name);
            }
        } else {
            t.name = (layout.to_harness)(&t.name);
            body.push(t);
        }
    }

    let adapter = || Some(Box::new(PyTorchToBurnAdapter) as Box<dyn burn::store::ModuleAdapter>);
    let result = backbone.apply(body, None, adapter(), true);
    record(&mut report, result, "", layout);
    if options.keep_head {
        let Some(linear) = head.as_mut() else {
            return Err(err(
                path,
                format!(
                    "keep_head: this protocol has no classifier head to load `{}` into",
                    layout.head_prefix.trim_end_matches('.')
                ),
            ));
        };
        let result = linear.apply(fc, None, adapter(), true);
        record(&mut report, result, layout.head_prefix, &RESNET);
    }

    if !options.allow_partial && !report.is_complete() {
        let mut problems = Vec::new();
        for (what, keys) in [
            ("shape mismatch", &report.mismatched),
            ("missing in the checkpoint", &report.missing),
            ("unused", &report.unused),
        ] {
            if !keys.is_empty() {
                problems.push(format!("{what}: {}", list(keys)));
            }
        }
        return Err(err(
            path,
            format!(
                "does not match the configured backbone (check arch, width and weights_key; \
                 allow_partial: true loads it anyway): {}",
                problems.join("; ")
            ),
        ));
    }
    Ok((backbone, head, report))
}

/// `reusebench convert`: imports torchvision weights into a backbone shaped
/// by `config` and writes it in the harness's checkpoint format, which grids
/// then name as `backbone.checkpoint`. The head is not written (harness
/// checkpoints hold backbones; heads belong to protocols).
pub fn convert_torchvision(
    config: &BackboneConfig,
    output: &Path,
    device: &burn::tensor::Device,
) -> Result<LoadReport, CoreError> {
    config.validate()?;
    let Some(weights) = &config.weights else {
        return Err(CoreError::config(
            "weights",
            "convert: no weights file given",
        ));
    };
    let options = ImportOptions {
        top_level_key: config.weights_key.clone(),
        keep_head: false,
        allow_partial: config.allow_partial,
    };
    // The initial weights only matter for tensors a partial load leaves untouched.
    let fresh = config.build(
        &mut <ChaCha8Rng as rand::SeedableRng>::seed_from_u64(0),
        device,
    );
    let (backbone, _, report) = import_torchvision(fresh, None, weights, &options)?;
    // The harness's own format records the shape; a weights path would
    // make loading it import twice.
    let own = BackboneConfig {
        weights: None,
        weights_key: None,
        allow_partial: false,
        ..config.clone()
    };
    save_backbone(&backbone, &own, output)?;
    Ok(report)
}
