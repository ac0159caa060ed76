//! `finetune-plain`: every parameter tuned with cross-entropy alone for
//! every one of `tuning.max_steps` steps, whatever the grid's early
//! stopping says: the paper's plain fine-tuning, the strongest simple
//! baseline (`finetune` is its early-stopped variant).

use reusebench_core::CoreError;
use reusebench_core::method::Method;
use reusebench_core::model::Classifier;
use reusebench_core::train::OptimConfig;
use serde::{Deserialize, Serialize};

use super::{DebiasMethodSpec, TuneContext, Tuned, trainable_frozen_bn, tune_classifier};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FinetunePlain {
    pub optimizer: OptimConfig,
}

impl Method for FinetunePlain {}

impl DebiasMethodSpec for FinetunePlain {
    fn tune(&self, start: &Classifier, ctx: &TuneContext) -> Result<Tuned, CoreError> {
        let ctx = TuneContext {
            early_stopping: false,
            ..*ctx
        };
        let model = trainable_frozen_bn(start);
        tune_classifier(model, &self.optimizer, &ctx, Box::new(|_: &Classifier| None))
    }
}
