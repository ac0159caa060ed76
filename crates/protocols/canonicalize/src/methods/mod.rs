//! The canonicalize methods: what sits in front of the predictor, and
//! what the loss adds. Every method trains with the same loop, optimizer
//! and epochs; the predictor is fine-tuned or frozen as the cell says.
//!
//! Adding a method: a file here with a config implementing [`Method`] and
//! [`CanonMethodSpec`], and one line in [`CanonMethod`].

use reusebench_core::method::Method;

/// What canonicalize asks of a method: what goes in front of the
/// predictor and what the loss adds.
pub trait CanonMethodSpec: Method {
    /// Whether a canonicalizer goes in front of the predictor.
    fn canonicalizes(&self) -> bool;
    /// Weight of the canonicalization prior, CE(scores, identity), in the
    /// loss.
    /// Epochs of prior-only training of the canonicalizer before the joint
    /// training (equiadapt's research code: `prior_train_epochs`).
    fn prior_epochs(&self) -> usize {
        0
    }
    fn prior_weight(&self) -> f64 {
        0.0
    }
    /// Whether each training image is rotated by a random element of C_N.
    fn rotates_training_images(&self) -> bool {
        false
    }
}

reusebench_core::register_methods! {
    /// Every canonicalize method, by the name grids give it: one line each.
    pub enum CanonMethod: dyn CanonMethodSpec {
        Vanilla = "vanilla" in vanilla,
        Aug = "aug" in aug,
        Canon = "canon" in canon,
        CanonPrior = "canon-prior" in canon_prior,
    }
}
