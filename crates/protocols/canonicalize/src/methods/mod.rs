//! The canonicalize methods: what sits in front of the predictor, and
//! what the loss adds. Every method trains with the same loop, optimizer
//! and epochs; the predictor is fine-tuned or frozen as the cell says.
//!
//! Adding a method: a file here with a config implementing
//! [`CanonMethodSpec`], and one variant in [`CanonMethod`].

mod aug;
mod canon;
mod canon_prior;
mod vanilla;

use reusebench_core::CoreError;
use serde::{Deserialize, Serialize};

pub use aug::Aug;
pub use canon::Canon;
pub use canon_prior::CanonPrior;
pub use vanilla::Vanilla;

pub trait CanonMethodSpec {
    fn validate(&self) -> Result<(), CoreError> {
        Ok(())
    }
    /// Whether a canonicalizer goes in front of the predictor.
    fn canonicalizes(&self) -> bool;
    /// Weight of the canonicalization prior, CE(scores, identity), in the
    /// loss.
    fn prior_weight(&self) -> f64 {
        0.0
    }
    /// Whether each training image is rotated by a random element of C_N.
    fn rotates_training_images(&self) -> bool {
        false
    }
}

/// Every canonicalize method, by the name grids give it: one line each.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "name", rename_all = "kebab-case", deny_unknown_fields)]
pub enum CanonMethod {
    Vanilla(Vanilla),
    Aug(Aug),
    Canon(Canon),
    CanonPrior(CanonPrior),
}

impl CanonMethod {
    pub fn spec(&self) -> &dyn CanonMethodSpec {
        match self {
            Self::Vanilla(m) => m,
            Self::Aug(m) => m,
            Self::Canon(m) => m,
            Self::CanonPrior(m) => m,
        }
    }

    pub fn name(&self) -> &'static str {
        match self {
            Self::Vanilla(_) => "vanilla",
            Self::Aug(_) => "aug",
            Self::Canon(_) => "canon",
            Self::CanonPrior(_) => "canon-prior",
        }
    }
}
