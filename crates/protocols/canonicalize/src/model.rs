//! Φ(x) = predictor(c(x)⁻¹ · x): the pretrained classifier, with or
//! without a canonicalizer in front.

use burn::module::Module;
use burn::tensor::Tensor;
use reusebench_core::model::{Classifier, TrainModel};

use crate::canonicalizer::Canonicalizer;
use crate::equivariant::Dropout;

#[derive(Module, Debug)]
pub struct Canonicalized {
    pub canonicalizer: Option<Canonicalizer>,
    pub predictor: Classifier,
}

impl Canonicalized {
    /// Logits, and the canonicalizer's scores where there is one.
    pub fn forward_parts(&self, x: Tensor<4>) -> (Tensor<2>, Option<Tensor<2>>) {
        self.forward_parts_with(x, None)
    }

    /// [`Canonicalized::forward_parts`] with `dropout` in the
    /// canonicalizer (training).
    pub fn forward_parts_with(
        &self,
        x: Tensor<4>,
        dropout: Option<&mut Dropout>,
    ) -> (Tensor<2>, Option<Tensor<2>>) {
        match &self.canonicalizer {
            None => (self.predictor.forward(x), None),
            Some(c) => {
                let scores = c.scores_with(x.clone(), dropout);
                let upright = c.canonicalize(x, scores.clone());
                (self.predictor.forward(upright), Some(scores))
            }
        }
    }
}

impl TrainModel for Canonicalized {
    fn forward(&self, images: Tensor<4>) -> Tensor<2> {
        self.forward_parts(images).0
    }
}

/// The canonicalizer alone, with its group scores as the logits: the
/// prior-only warm-up trains it with prior_weight · CE(scores, identity)
/// on upright images (every label the identity, index 0), the weight the
/// joint training gives the prior, predictor untouched.
#[derive(Module, Debug)]
pub struct PriorOnly {
    pub canonicalizer: Canonicalizer,
    #[module(skip)]
    pub weight: f64,
}

impl TrainModel for PriorOnly {
    fn forward(&self, images: Tensor<4>) -> Tensor<2> {
        self.canonicalizer.scores(images)
    }
    fn loss(&self, logits: Tensor<2>, targets: Tensor<2>) -> Tensor<1> {
        burn::tensor::loss::cross_entropy_with_logits(logits, targets).mul_scalar(self.weight)
    }
}
