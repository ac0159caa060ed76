//! What a performative method does each round: give posteriors for the
//! round's test images (and, if it has one, the class prior it predicts),
//! then learn from the round's labelled training sample. Every method reads
//! the deployed model's outputs computed once per pool image
//! ([`Deployed`]); none runs the backbone again.
//!
//! Adding a method: a file here with a config implementing [`Method`] and
//! [`MethodSpec`], and one line in [`PerformativeMethod`].

use burn::nn::Linear;
use burn::tensor::Device;
use reusebench_core::CoreError;
use reusebench_core::features::Rows;
use reusebench_core::method::Method;

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
    /// The cell's checkpoints: a method that retrains the classifier
    /// checkpoints each round's training there.
    pub checkpoints: Option<std::sync::Arc<reusebench_core::resume::Checkpoints>>,
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

/// A round's answer, or why there is none.
pub type Predicted = Result<Prediction, CoreError>;
/// A method's fresh state, or why it cannot start.
pub type Built = Result<Box<dyn Adapter>, CoreError>;

/// A method's state over one simulation.
pub trait Adapter {
    fn predict(&mut self, input: &RoundInput, deployed: &Deployed) -> Predicted;
    fn observe(&mut self, _feedback: &Feedback, _deployed: &Deployed) -> Result<(), CoreError> {
        Ok(())
    }
}

/// A method's config: checked before anything runs, built per cell.
pub trait MethodSpec: Method {
    /// `seed` seeds the method's own random streams; `device` is the
    /// training device (autodiff) for methods that train.
    fn build(&self, deployed: &Deployed, seed: u64, device: &Device) -> Built;
}

/// A method whose config is its whole state (it learns nothing over the
/// rounds) is its own adapter.
impl<M: Adapter + Method + Clone + 'static> MethodSpec for M {
    fn build(&self, _: &Deployed, _: u64, _: &Device) -> Built {
        Ok(Box::new(self.clone()))
    }
}

reusebench_core::register_methods! {
    /// Every performative method, by the name grids give it: one line each.
    pub enum PerformativeMethod: dyn MethodSpec {
        NoAdapt = "no-adapt" in no_adapt,
        OraclePrior = "oracle-prior" in oracle_prior,
        EmPrior = "em-prior" in em_prior,
        Bbse = "bbse" in bbse,
        Pap = "pap" in pap,
        RetrainHead = "retrain-head" in retrain,
        Finetune = "finetune" in finetune,
    }
}

pub use oracle_prior::OracleSource;

/// Prefixes a method's config error with `method.`.
pub(crate) fn method_key(e: CoreError) -> CoreError {
    reusebench_core::protocol::prefix_key(e, "method")
}
