//! Fine-tune the predictor on images rotated by random elements of C_N
//! (the paper's C8-Aug baseline).

use reusebench_core::method::Method;
use serde::{Deserialize, Serialize};

use super::CanonMethodSpec;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Aug {}

impl Method for Aug {}

impl CanonMethodSpec for Aug {
    fn canonicalizes(&self) -> bool {
        false
    }
    fn rotates_training_images(&self) -> bool {
        true
    }
}
