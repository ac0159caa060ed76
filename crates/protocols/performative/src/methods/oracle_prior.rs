//! `oracle-prior`: Bayes correction with the round's true class prior. As
//! the PaP code's oracle (the default, `prior: sample`): the test sample's
//! own class frequencies. `prior: proportions` uses the simulator's
//! proportions the sample was drawn from instead (the setup before
//! 2026-12-06); they differ by the per-class minimum and, when drawing
//! without replacement from a small pool, by every class that ran out.

use crate::label_shift::{bayes_correct, class_proportions};
use reusebench_core::method::Method;
use serde::{Deserialize, Serialize};

use super::{Adapter, Deployed, Predicted, Prediction, RoundInput};

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OraclePrior {
    #[serde(default)]
    pub prior: OracleSource,
}

/// Which true prior the oracle corrects with.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum OracleSource {
    /// The round's test sample's class frequencies (the authors').
    #[default]
    Sample,
    /// The proportions the sample was drawn from.
    Proportions,
}

impl Method for OraclePrior {}

impl Adapter for OraclePrior {
    fn predict(&mut self, input: &RoundInput, deployed: &Deployed) -> Predicted {
        let prior = match self.prior {
            OracleSource::Sample => class_proportions(
                input.test.iter().map(|&i| deployed.labels[i]),
                deployed.classes,
            ),
            OracleSource::Proportions => input.proportions.to_vec(),
        };
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
