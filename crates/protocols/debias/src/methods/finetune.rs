//! `finetune`: every parameter tuned with cross-entropy alone (the paper's
//! plain fine-tuning; with early stopping on, its early-stopped variant).

use reusebench_core::method::Method;
use reusebench_core::CoreError;
use reusebench_core::model::Classifier;
use reusebench_core::train::OptimConfig;
use serde::{Deserialize, Serialize};

use super::{DebiasMethodSpec, TuneContext, Tuned, trainable_frozen_bn, tune_classifier};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Finetune {
    pub optimizer: OptimConfig,
}

impl Method for Finetune {}

impl DebiasMethodSpec for Finetune {
    fn tune(&self, start: &Classifier, ctx: &TuneContext) -> Result<Tuned, CoreError> {
        let model = trainable_frozen_bn(start);
        tune_classifier(model, &self.optimizer, ctx, Box::new(|_: &Classifier| None))
    }
}
