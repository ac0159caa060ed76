//! `em-prior`: the round's prior re-estimated by Saerens et al.'s EM on the
//! unlabelled test sample's deployed posteriors, then Bayes correction.

use reusebench_core::method::Method;
use burn::tensor::Device;
use reusebench_core::CoreError;
use crate::label_shift::{bayes_correct, em_prior};
use serde::{Deserialize, Serialize};

use super::{Adapter, Deployed, MethodSpec, Prediction, RoundInput};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EmPrior {
    #[serde(default = "default_max_iter")]
    pub max_iter: usize,
    /// Stop when no class's prior moves by more than this.
    #[serde(default = "default_tol")]
    pub tol: f64,
}

fn default_max_iter() -> usize {
    100
}

fn default_tol() -> f64 {
    1e-6
}

impl Default for EmPrior {
    fn default() -> Self {
        Self {
            max_iter: default_max_iter(),
            tol: default_tol(),
        }
    }
}

impl Method for EmPrior {
    fn validate(&self) -> Result<(), CoreError> {
        if self.max_iter == 0 {
            return Err(CoreError::config("max_iter", "must be >= 1"));
        }
        if !(self.tol.is_finite() && self.tol > 0.0) {
            return Err(CoreError::config("tol", "must be > 0"));
        }
        Ok(())
    }
}

impl MethodSpec for EmPrior {
    fn build(&self, _: &Deployed, _: u64, _: &Device) -> Result<Box<dyn Adapter>, CoreError> {
        Ok(Box::new(self.clone()))
    }
}

impl Adapter for EmPrior {
    fn predict(
        &mut self,
        input: &RoundInput,
        deployed: &Deployed,
    ) -> Result<Prediction, CoreError> {
        let probs = deployed.probs_of(input.test);
        let k = deployed.classes;
        let est = em_prior(&probs, k, &deployed.source_prior, self.max_iter, self.tol);
        Ok(Prediction {
            probs: bayes_correct(&probs, k, &deployed.source_prior, &est.prior),
            prior: Some(est.prior),
        })
    }
}
