//! What a performative method does each round: give posteriors for the
//! round's test images (and, if it has one, the class prior it predicts),
//! then learn from the round's labelled training sample. Every method reads
//! the deployed model's outputs computed once per pool image
//! ([`Deployed`]); none runs the backbone again.
//!
//! Adding a method: a file here with a config implementing [`MethodSpec`],
//! and one variant in [`PerformativeMethod`].

mod bbse;
mod em_prior;
mod no_adapt;
mod oracle_prior;
mod pap;
mod retrain;

use burn::nn::Linear;
use burn::tensor::Device;
use reusebench_core::CoreError;
use reusebench_core::features::Rows;
use serde::{Deserialize, Serialize};

pub use bbse::Bbse;
pub use em_prior::EmPrior;
pub use no_adapt::NoAdapt;
pub use oracle_prior::OraclePrior;
pub use pap::Pap;
pub use retrain::Retrain;

/// The deployed model's outputs on every pool image, computed once.
pub struct Deployed {
    pub classes: usize,
    /// Softmax of the deployed classifier, `[pool, classes]`.
    pub probs: Vec<f64>,
    /// The backbone's features, `[pool, dim]` (for methods that retrain the head).
    pub features: Rows,
    /// The deployed head (for methods that retrain it).
    pub head: Linear,
    /// Labels of the pool images.
    pub labels: Vec<u32>,
    /// The class prior the deployed model was trained under (its training
    /// split's class proportions).
    pub source_prior: Vec<f64>,
    /// Indices of the pool's training part: labelled data from the pool,
    /// never a round's test image (BBSE's confusion matrix).
    pub pool_train: Vec<usize>,
    /// The pool's images and the deployed classifier, for a method that
    /// retrains the backbone itself (`None` where only outputs are known).
    pub source: Option<DeployedSource>,
}

/// What produced [`Deployed`]'s outputs.
pub struct DeployedSource {
    pub pool: std::sync::Arc<reusebench_data::ImageSet>,
    pub classifier: reusebench_core::model::Classifier,
    pub normalization: reusebench_data::Normalization,
    pub eval_batch_size: usize,
}

impl Deployed {
    /// The deployed posteriors of `indices`, `[indices.len(), classes]`.
    pub fn probs_of(&self, indices: &[usize]) -> Vec<f64> {
        let k = self.classes;
        indices
            .iter()
            .flat_map(|&i| self.probs[i * k..(i + 1) * k].iter().copied())
            .collect()
    }
}

/// What a method may know when it predicts a round.
pub struct RoundInput<'a> {
    pub round: usize,
    /// Pool indices of the round's test sample (labels hidden from methods).
    pub test: &'a [usize],
    /// The simulator's class proportions this round (only the oracle reads them).
    pub proportions: &'a [f64],
    /// The method's own per-class accuracy on the previous round (fractions;
    /// absent classes filled with the mean), `None` in round 0.
    pub previous_acc: Option<&'a [f64]>,
}

/// A method's answer for a round.
pub struct Prediction {
    /// Posteriors of the test images, `[test.len(), classes]`.
    pub probs: Vec<f64>,
    /// The class prior the method predicts, if it predicts one.
    pub prior: Option<Vec<f64>>,
}

/// What a method learns after a round.
pub struct Feedback<'a> {
    pub round: usize,
    /// Pool indices of the round's labelled training sample.
    pub train: &'a [usize],
    /// That sample's class proportions.
    pub train_prior: &'a [f64],
    /// As in [`RoundInput`].
    pub previous_acc: Option<&'a [f64]>,
}

/// A method's state over one simulation.
pub trait Adapter {
    fn predict(&mut self, input: &RoundInput, deployed: &Deployed)
    -> Result<Prediction, CoreError>;
    fn observe(&mut self, _feedback: &Feedback, _deployed: &Deployed) -> Result<(), CoreError> {
        Ok(())
    }
}

/// A method's config: checked before anything runs, built per cell.
pub trait MethodSpec {
    fn validate(&self) -> Result<(), CoreError> {
        Ok(())
    }
    /// `seed` seeds the method's own random streams; `device` is the
    /// training device (autodiff) for methods that train.
    fn build(
        &self,
        deployed: &Deployed,
        seed: u64,
        device: &Device,
    ) -> Result<Box<dyn Adapter>, CoreError>;
}

/// Every performative method, by the name grids give it: one line each.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "name", rename_all = "kebab-case", deny_unknown_fields)]
pub enum PerformativeMethod {
    NoAdapt(NoAdapt),
    OraclePrior(OraclePrior),
    EmPrior(EmPrior),
    Bbse(Bbse),
    Pap(Pap),
    Retrain(Retrain),
}

impl PerformativeMethod {
    pub fn spec(&self) -> &dyn MethodSpec {
        match self {
            Self::NoAdapt(m) => m,
            Self::OraclePrior(m) => m,
            Self::EmPrior(m) => m,
            Self::Bbse(m) => m,
            Self::Pap(m) => m,
            Self::Retrain(m) => m,
        }
    }

    /// The method column of the cell's rows: the name, with what makes a
    /// variant a different method (`retrain+backbone`).
    pub fn label(&self) -> String {
        match self {
            Self::Retrain(r) if r.backbone => "retrain+backbone".into(),
            other => other.name().into(),
        }
    }

    pub fn name(&self) -> &'static str {
        match self {
            Self::NoAdapt(_) => "no-adapt",
            Self::OraclePrior(_) => "oracle-prior",
            Self::EmPrior(_) => "em-prior",
            Self::Bbse(_) => "bbse",
            Self::Pap(_) => "pap",
            Self::Retrain(_) => "retrain",
        }
    }
}

/// Prefixes a method's config error with `method.`.
pub(crate) fn method_key(e: CoreError) -> CoreError {
    reusebench_core::protocol::prefix_key(e, "method")
}
