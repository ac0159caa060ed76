//! Per-parameter importance from per-sample gradients.
//!
//! - MAS (Aljundi et al. 2018): `Ω_k = mean_x |∂‖f(x)‖²₂ / ∂θ_k|`, where
//!   `f(x)` is the classifier's logit vector (every class of the head).
//! - Fisher (EWC, Kirkpatrick et al. 2017; online EWC, Schwarz et al. 2018):
//!   `F_k = mean_x (∂ log p(y|x) / ∂θ_k)²` with `y` the true label (the
//!   empirical Fisher), or, as Mammoth's `ewc_on.py` computes it, each
//!   sample's term weighted by `p(y|x)`.
//!
//! Both are means of a function of each sample's own gradient, so every
//! sample gets its own backward pass (batch 1, un-augmented, batch norm in
//! evaluation mode so that samples do not interact and running statistics
//! are not touched).

use std::sync::Arc;

use burn::module::{Module, ModuleVisitor, Param};
use burn::tensor::Gradients;
use burn::tensor::{Device, Tensor, TensorData};
use reusebench_data::{Augment, BatchIter, BatchPlan, ImageSet, Normalization};

use super::{ParamTable, flat, snapshot};
use crate::error::CoreError;
use crate::model::Classifier;
use crate::progress::Progress;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ImportanceKind {
    /// `|∂‖f(x)‖² / ∂θ|`
    Mas,
    /// `(∂ log p(y|x) / ∂θ)²`
    Fisher,
    /// `p(y|x) · (∂ log p(y|x) / ∂θ)²` (Mammoth's `ewc_on.py`)
    FisherWeighted,
}

struct Accumulate<'a> {
    grads: &'a Gradients,
    kind: ImportanceKind,
    /// The sample's weight (`p(y|x)` for the weighted Fisher, else 1).
    weight: f64,
    table: &'a mut ParamTable,
}

impl ModuleVisitor for Accumulate<'_> {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
        let Some(sum) = self.table.get_mut(&param.id) else {
            return;
        };
        if let Some(g) = param.val().grad(self.grads) {
            let g = flat(g);
            let term = match self.kind {
                ImportanceKind::Mas => g.abs(),
                ImportanceKind::Fisher => g.clone() * g,
                ImportanceKind::FisherWeighted => (g.clone() * g) * self.weight,
            };
            *sum = sum.clone() + term;
        }
    }
}

/// Importance of every trainable parameter of `model` on (up to
/// `max_samples` of) `set`: the mean over samples of the per-sample term.
/// `device` is the autodiff device the model lives on.
pub fn importance(
    model: &Classifier,
    set: &Arc<ImageSet>,
    normalization: Normalization,
    kind: ImportanceKind,
    max_samples: Option<usize>,
    seed: u64,
    device: &Device,
    progress: &dyn Progress,
) -> Result<ParamTable, CoreError> {
    // Which parameters train is decided by the model as given; the copy
    // below only switches batch norm to evaluation mode.
    let trainable = snapshot(model);
    let mut table: ParamTable = trainable
        .iter()
        .map(|(id, t)| (*id, t.zeros_like()))
        .collect();
    let probe = model.clone().freeze().set_require_grad(true);
    let n = max_samples.unwrap_or(set.len()).min(set.len());
    let plan = BatchPlan {
        batch_size: 1,
        shuffle_seed: (n < set.len()).then_some(seed),
        augment: Augment::NONE,
        normalization,
        prefetch: 8,
        drop_last: false,
    };
    progress.begin(
        match kind {
            // The progress line's "loss" is the per-sample objective.
            ImportanceKind::Mas => "MAS importance (‖f(x)‖²)",
            ImportanceKind::Fisher | ImportanceKind::FisherWeighted => {
                "Fisher information (−log p(y|x))"
            }
        },
        n,
    );
    for batch in BatchIter::new(Arc::clone(set), plan).take(n) {
        let x = Tensor::<4>::from_data(TensorData::new(batch.images, batch.shape), device);
        let logits = probe.forward(x);
        let objective = match kind {
            ImportanceKind::Mas => (logits.clone() * logits).sum(),
            ImportanceKind::Fisher | ImportanceKind::FisherWeighted => {
                let log_p = burn::tensor::activation::log_softmax(logits, 1);
                let label = batch.labels[0] as usize;
                log_p.slice([0..1, label..label + 1]).reshape([1]).neg()
            }
        };
        let value = objective.clone().into_scalar::<f32>();
        if !value.is_finite() {
            return Err(CoreError::NonFinite {
                stage: "importance estimate (the model's outputs are not finite)".into(),
                batch: batch.indices[0],
                value,
            });
        }
        progress.batch(value);
        let grads = objective.backward();
        let weight = match kind {
            // The objective is −log p(y|x).
            ImportanceKind::FisherWeighted => (-(value as f64)).exp(),
            _ => 1.0,
        };
        probe.visit(&mut Accumulate {
            grads: &grads,
            kind,
            weight,
            table: &mut table,
        });
    }
    progress.end();
    for t in table.values_mut() {
        *t = t.clone() / n.max(1) as f64;
    }
    Ok(table)
}
