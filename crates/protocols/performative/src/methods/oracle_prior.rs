//! `oracle-prior`: Bayes correction with the round's true class
//! proportions (the simulator's, which the test sample is drawn from). The
//! PaP code's oracle uses the test sample's own class frequencies; with a
//! minimum per class these differ slightly from the proportions.

use reusebench_core::method::Method;
use crate::label_shift::bayes_correct;
use serde::{Deserialize, Serialize};

use super::{Adapter, Deployed, Predicted, Prediction, RoundInput};

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OraclePrior {}

impl Method for OraclePrior {}

impl Adapter for OraclePrior {
    fn predict(&mut self, input: &RoundInput, deployed: &Deployed) -> Predicted {
        let prior = input.proportions.to_vec();
        let probs = bayes_correct(
            &deployed.probs_of(input.test),
            deployed.classes,
            &deployed.source_prior,
            &prior,
        );
        Ok(Prediction {
            probs,
            prior: Some(prior),
        })
    }
}
