//! `em-prior`: the round's prior re-estimated by Saerens et al.'s EM on the
//! unlabelled test sample's deployed posteriors, then Bayes correction.

use reusebench_core::method::Method;
use crate::label_shift::{bayes_correct, em_prior};
use reusebench_core::bounded::{Positive, PositiveInt};
use serde::{Deserialize, Serialize};

use super::{Adapter, Deployed, Predicted, Prediction, RoundInput};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct EmPrior {
    pub max_iter: PositiveInt,
    /// Stop when no class's prior moves by more than this.
    pub tol: Positive,
}

/// What a grid leaves out: 100 iterations, tolerance 1e-6.
impl Default for EmPrior {
    fn default() -> Self {
        let (max_iter, tol) = (PositiveInt::of(100), Positive::of(1e-6));
        Self { max_iter, tol }
    }
}

impl Method for EmPrior {}

impl Adapter for EmPrior {
    fn predict(&mut self, input: &RoundInput, deployed: &Deployed) -> Predicted {
        let probs = deployed.probs_of(input.test);
        let k = deployed.classes;
        let est = em_prior(&probs, k, &deployed.source_prior, self.max_iter.get(), self.tol.get());
        Ok(Prediction {
            probs: bayes_correct(&probs, k, &deployed.source_prior, &est.prior),
            prior: Some(est.prior),
        })
    }
}
