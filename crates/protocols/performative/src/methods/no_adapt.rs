//! `no-adapt`: the deployed model's posteriors as they are.

use reusebench_core::method::Method;
use burn::tensor::Device;
use serde::{Deserialize, Serialize};

use super::{Built, Predicted, Adapter, Deployed, MethodSpec, Prediction, RoundInput};

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NoAdapt {}

impl Method for NoAdapt {}

impl MethodSpec for NoAdapt {
    fn build(&self, _: &Deployed, _: u64, _: &Device) -> Built {
        Ok(Box::new(NoAdaptState))
    }
}

struct NoAdaptState;

impl Adapter for NoAdaptState {
    fn predict(&mut self, input: &RoundInput, deployed: &Deployed) -> Predicted {
        Ok(Prediction {
            probs: deployed.probs_of(input.test),
            prior: None,
        })
    }
}
