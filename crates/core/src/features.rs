//! Inference passes without an autodiff graph: logits and backbone features
//! for whole image sets, returned as host `f32` rows.

use std::sync::Arc;

use burn::module::Module;
use burn::tensor::{Device, Tensor, TensorData};
use reusebench_data::{BatchIter, BatchPlan, ImageSet, Normalization};

use burn::nn::Linear;

use crate::backbone::Backbone;
use crate::model::Classifier;

pub use crate::rows::Rows;

fn infer(
    set: &Arc<ImageSet>,
    batch_size: usize,
    normalization: Normalization,
    device: &Device,
    forward: impl Fn(Tensor<4>) -> Tensor<2>,
) -> Rows {
    let device = device.clone().without_autodiff();
    let plan = BatchPlan::in_order(batch_size, normalization);
    let mut values = Vec::new();
    let mut dim = 0;
    for batch in BatchIter::new(Arc::clone(set), plan) {
        let x = Tensor::<4>::from_data(TensorData::new(batch.images, batch.shape), &device);
        let out = forward(x);
        dim = out.dims()[1];
        values.extend(out.into_data().try_into_vec::<f32>().expect("f32 output"));
    }
    Rows { values, dim }
}

/// Logits of `model` (evaluation mode: running batch-norm statistics).
pub fn logits(
    model: &Classifier,
    set: &Arc<ImageSet>,
    batch_size: usize,
    normalization: Normalization,
    device: &Device,
) -> Rows {
    let model = model.valid();
    infer(set, batch_size, normalization, device, |x| model.forward(x))
}

/// A network features are read from, in evaluation mode: a backbone (its
/// pooled features) or a classifier (the features its head sees: the
/// backbone's, or the side-tuning blend).
pub trait FeatureNet {
    fn feature_pass(&self) -> impl Fn(Tensor<4>) -> Tensor<2>;
}

impl FeatureNet for Backbone {
    fn feature_pass(&self) -> impl Fn(Tensor<4>) -> Tensor<2> {
        let backbone = self.valid();
        move |x| backbone.forward(x)
    }
}

impl FeatureNet for Classifier {
    fn feature_pass(&self) -> impl Fn(Tensor<4>) -> Tensor<2> {
        let model = self.valid();
        move |x| model.features(x)
    }
}

/// `net`'s features of every image of `set` (evaluation mode).
pub fn features(
    net: &impl FeatureNet,
    set: &Arc<ImageSet>,
    batch_size: usize,
    normalization: Normalization,
    device: &Device,
) -> Rows {
    infer(set, batch_size, normalization, device, net.feature_pass())
}

/// Activations of stage `layer` of `backbone` (one of
/// [`Backbone::layer_names`]: a ResNet's stem and layers, a ViT's blocks), read at `tap`
/// and averaged over space or tokens (evaluation mode). `None` for a stage
/// the backbone does not have.
pub fn pooled_activations(
    backbone: &Backbone,
    layer: &str,
    tap: Tap,
    set: &Arc<ImageSet>,
    batch_size: usize,
    normalization: Normalization,
    device: &Device,
) -> Option<Rows> {
    if !backbone.layer_names().iter().any(|l| l == layer) {
        return None;
    }
    let backbone = backbone.valid();
    Some(infer(set, batch_size, normalization, device, |x| {
        match (&backbone, tap) {
            (Backbone::ResNet(r), Tap::Block) => r.pooled_at(x, layer),
            (Backbone::ResNet(r), Tap::Conv) => r.pooled_conv_at(x, layer),
            (Backbone::Vit(v), tap) => v.pooled_at(x, layer, tap == Tap::Conv),
        }
        .expect("a known layer")
    }))
}

/// Where in a stage [`pooled_activations`] reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Tap {
    /// The stage's last convolution's raw output, before batch norm and
    /// ReLU (a forward hook on that convolution, as RESQUE's authors read);
    /// in a ViT block, its last linear layer's (the MLP's), before the
    /// residual sum.
    #[default]
    Conv,
    /// The stage's output, after its last ReLU (non-negative); a ViT
    /// block's output.
    Block,
}

/// Logits of `head` on features already computed (evaluation mode): lets an
/// evaluation that needs both features and logits pass images through the
/// backbone once.
pub fn head_logits(head: &Linear, features: &Rows, device: &Device) -> Rows {
    let head = head.valid();
    let device = device.clone().without_autodiff();
    let x = Tensor::<2>::from_data(
        TensorData::new(features.values.clone(), [features.len(), features.dim]),
        &device,
    );
    let out = head.forward(x);
    let dim = out.dims()[1];
    Rows {
        values: out.into_data().try_into_vec::<f32>().expect("f32 output"),
        dim,
    }
}

/// What identifies the features a model's head sees: fingerprints of the
/// backbone and of the side branch, if any. Fingerprinting reads every
/// weight, so a caller that asks for several sets with one model computes
/// the key once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ModelKey {
    base: u64,
    side: Option<u64>,
}

impl ModelKey {
    pub fn of(model: &Classifier) -> Self {
        use crate::feature_cache::fingerprint;
        Self {
            base: fingerprint(model.backbone()),
            side: model.side_tuned().map(|s| fingerprint(&s.side)),
        }
    }
}

/// [`features`] of a classifier through `cache`: the backbone's features (and a side
/// branch's, for side-tuning) are each computed once per set for given
/// weights; a side-tuning blend is mixed from the two on the host, so the
/// frozen base never runs twice on the same images.
pub fn cached_features(
    cache: &crate::feature_cache::FeatureCache,
    model: &Classifier,
    set: &Arc<ImageSet>,
    batch_size: usize,
    normalization: Normalization,
    device: &Device,
) -> Arc<Rows> {
    let key = ModelKey::of(model);
    cached_features_keyed(cache, model, &key, set, batch_size, normalization, device)
}

/// [`cached_features`] with the model's key computed by the caller.
pub fn cached_features_keyed(
    cache: &crate::feature_cache::FeatureCache,
    model: &Classifier,
    key: &ModelKey,
    set: &Arc<ImageSet>,
    batch_size: usize,
    normalization: Normalization,
    device: &Device,
) -> Arc<Rows> {
    let base = cache.get_or_compute(key.base, set, normalization, || {
        features(model.backbone(), set, batch_size, normalization, device)
    });
    let (Some(side), Some(side_key)) = (model.side_tuned(), key.side) else {
        return base;
    };
    let own = cache.get_or_compute(side_key, set, normalization, || {
        let net = side.side.valid();
        infer(set, batch_size, normalization, device, |x| net.forward(x))
    });
    let alpha = side.alpha_value() as f32;
    let (a, b) = (alpha, 1.0 - alpha);
    Arc::new(Rows {
        values: base
            .values
            .iter()
            .zip(&own.values)
            .map(|(x, y)| a * x + b * y)
            .collect(),
        dim: base.dim,
    })
}

/// `backbone` with the running statistics of every batch-norm layer
/// recomputed on `set` (un-augmented, in order, training-mode passes on the
/// autodiff `device`, no weight changes): the mean of the per-batch
/// statistics, as PyTorch's `momentum=None`. A randomly initialised network
/// keeps statistics of 0 and 1 otherwise, and its evaluation-mode features
/// explode layer by layer.
pub fn recompute_batch_norm(
    mut backbone: Backbone,
    set: &Arc<ImageSet>,
    batch_size: usize,
    normalization: Normalization,
    device: &Device,
) -> Backbone {
    if backbone.batch_norms_mut().is_empty() {
        return backbone; // a ViT: nothing to recompute
    }
    // Untracked parameters: the training-mode passes build no autodiff
    // graph (with tracked ones, every pass's graph stayed alive: 1.6 GB on
    // the quickstart). Batch norm keeps its training behaviour.
    let mut backbone = backbone.no_grad();
    let momentum: Vec<f64> = backbone
        .batch_norms_mut()
        .iter()
        .map(|bn| bn.momentum)
        .collect();
    let plan = BatchPlan {
        // A batch of one has no variance to average in.
        drop_last: set.len() >= batch_size.max(2),
        ..BatchPlan::in_order(batch_size.max(2), normalization)
    };
    for (k, batch) in BatchIter::new(Arc::clone(set), plan).enumerate() {
        if batch.labels.len() < 2 {
            continue;
        }
        for bn in backbone.batch_norms_mut() {
            bn.momentum = 1.0 / (k + 1) as f64;
        }
        let x = Tensor::<4>::from_data(TensorData::new(batch.images, batch.shape), device);
        let _ = backbone.forward(x);
    }
    for (bn, m) in backbone.batch_norms_mut().into_iter().zip(momentum) {
        bn.momentum = m;
    }
    // Back to a trainable network (the random reference may be fine-tuned).
    backbone.unfreeze()
}
