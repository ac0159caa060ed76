//! `no-adapt`: the deployed model's posteriors as they are.

use reusebench_core::method::Method;
use serde::{Deserialize, Serialize};

use super::{Adapter, Deployed, Predicted, Prediction, RoundInput};

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NoAdapt {}

impl Method for NoAdapt {}

impl Adapter for NoAdapt {
    fn predict(&mut self, input: &RoundInput, deployed: &Deployed) -> Predicted {
        Ok(Prediction {
            probs: deployed.probs_of(input.test),
            prior: None,
        })
    }
}
