//! A learned canonicalizer in front of the predictor, trained by the task
//! loss alone (the paper's LC): nothing ties the canonical orientation to
//! upright.

use reusebench_core::method::Method;
use serde::{Deserialize, Serialize};

use super::CanonMethodSpec;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Canon {}

impl Method for Canon {}

impl CanonMethodSpec for Canon {
    fn canonicalizes(&self) -> bool {
        true
    }
}
