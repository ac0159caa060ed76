//! Fine-tune the predictor on upright images, nothing in front.

use reusebench_core::method::Method;
use serde::{Deserialize, Serialize};

use super::CanonMethodSpec;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Vanilla {}

impl Method for Vanilla {}

impl CanonMethodSpec for Vanilla {
    fn canonicalizes(&self) -> bool {
        false
    }
}
