//! `finetune`: the authors' fine-tuning baseline ("oracle fine-tuning"):
//! the whole deployed classifier, backbone included, is fine-tuned (SGD) on
//! each round's labelled training sample, continuing from the round
//! before, and predicts the next round's test images itself. The one method
//! that runs the backbone every round: expensive.

use burn::tensor::Device;
use reusebench_core::bounded::PositiveInt;
use reusebench_core::method::Method;
use reusebench_core::train::OptimConfig;
use serde::{Deserialize, Serialize};

use super::retrain::RetrainHead;
use super::{Built, Deployed, MethodSpec};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Finetune {
    /// Epochs over each round's training sample.
    #[serde(default = "super::retrain::default_epochs")]
    pub epochs: PositiveInt,
    #[serde(default = "super::retrain::default_batch_size")]
    pub batch_size: PositiveInt,
    pub optimizer: OptimConfig,
}

impl Method for Finetune {}

impl MethodSpec for Finetune {
    fn build(&self, deployed: &Deployed, seed: u64, device: &Device) -> Built {
        RetrainHead {
            epochs: self.epochs,
            batch_size: self.batch_size,
            optimizer: self.optimizer.clone(),
            backbone: true,
        }
        .build(deployed, seed, device)
    }
}
