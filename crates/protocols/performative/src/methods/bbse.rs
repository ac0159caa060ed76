//! `bbse`: black-box shift estimation. The joint confusion matrix of the
//! deployed model's hard predictions is estimated once, on the pool's
//! labelled training part; each round solves it against the distribution
//! of hard predictions on the round's unlabelled test sample, then Bayes
//! correction with the estimate. The source prior is the confusion
//! matrix's column sums (the pool part's class proportions).

use reusebench_core::method::Method;
use burn::tensor::Device;
use crate::label_shift::{
    bayes_correct, bbse_prior, class_proportions, hard_predictions, joint_confusion,
};
use serde::{Deserialize, Serialize};

use super::{Built, Predicted, Adapter, Deployed, MethodSpec, Prediction, RoundInput};

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Bbse {}

impl Method for Bbse {}

impl MethodSpec for Bbse {
    fn build(&self, deployed: &Deployed, _: u64, _: &Device) -> Built {
        let k = deployed.classes;
        let predictions = hard_predictions(&deployed.probs_of(&deployed.pool_train), k);
        let labels: Vec<u32> = deployed
            .pool_train
            .iter()
            .map(|&i| deployed.labels[i])
            .collect();
        let confusion = joint_confusion(&predictions, &labels, k);
        Ok(Box::new(BbseState { confusion }))
    }
}

struct BbseState {
    confusion: Vec<f64>,
}

impl Adapter for BbseState {
    fn predict(&mut self, input: &RoundInput, deployed: &Deployed) -> Predicted {
        let k = deployed.classes;
        let probs = deployed.probs_of(input.test);
        let mu = class_proportions(hard_predictions(&probs, k).iter().map(|&p| p as u32), k);
        // w = π_t / π_pool; the posteriors are the deployed model's, trained
        // under the source prior, so the correction divides by that.
        let prior = bbse_prior(&self.confusion, &mu, k);
        Ok(Prediction {
            probs: bayes_correct(&probs, k, &deployed.source_prior, &prior),
            prior: Some(prior),
        })
    }
}
