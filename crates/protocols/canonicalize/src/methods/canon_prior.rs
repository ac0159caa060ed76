//! The canonicalizer with the canonicalization prior (the paper's
//! prior-LC): prior_weight · CE(scores, identity) pulls the canonical
//! orientation of training images, which are upright, to the identity.

use reusebench_core::method::Method;
use reusebench_core::bounded::NonNegative;
use serde::{Deserialize, Serialize};

use super::CanonMethodSpec;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CanonPrior {
    /// equiadapt's default: 100 (task weight 1).
    #[serde(default = "default_prior_weight")]
    pub prior_weight: NonNegative,
    /// Epochs of the prior alone (canonicalizer only, upright images,
    /// CE(scores, identity)) before the joint training: equiadapt's
    /// research code trains `prior_train_epochs` = 20 first.
    #[serde(default = "default_prior_epochs")]
    pub prior_epochs: usize,
}

fn default_prior_weight() -> NonNegative {
    NonNegative::of(100.0)
}
fn default_prior_epochs() -> usize {
    20
}

impl Method for CanonPrior {}

impl CanonMethodSpec for CanonPrior {
    fn canonicalizes(&self) -> bool {
        true
    }
    fn prior_weight(&self) -> f64 {
        self.prior_weight.get()
    }
    fn prior_epochs(&self) -> usize {
        self.prior_epochs
    }
}
