//! The canonicalizer with the canonicalization prior (the paper's
//! prior-LC): prior_weight · CE(scores, identity) pulls the canonical
//! orientation of training images, which are upright, to the identity.

use reusebench_core::method::Method;
use reusebench_core::CoreError;
use serde::{Deserialize, Serialize};

use super::CanonMethodSpec;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CanonPrior {
    /// equiadapt's default: 100 (task weight 1).
    #[serde(default = "default_prior_weight")]
    pub prior_weight: f64,
}

fn default_prior_weight() -> f64 {
    100.0
}

impl Method for CanonPrior {
    fn validate(&self) -> Result<(), CoreError> {
        if !(self.prior_weight.is_finite() && self.prior_weight >= 0.0) {
            return Err(CoreError::config(
                "method.prior_weight",
                format!("must be >= 0, got {}", self.prior_weight),
            ));
        }
        Ok(())
    }
}

impl CanonMethodSpec for CanonPrior {
    fn canonicalizes(&self) -> bool {
        true
    }
    fn prior_weight(&self) -> f64 {
        self.prior_weight
    }
}
