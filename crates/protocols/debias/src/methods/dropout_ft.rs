//! `dropout-ft`: fine-tuning with dropout on the features the head sees
//! (the paper's dropout baseline); evaluation without dropout.

use reusebench_core::method::Method;
use burn::module::Module;
use burn::nn::{Dropout, DropoutConfig};
use burn::tensor::Tensor;
use reusebench_core::CoreError;
use reusebench_core::model::{Classifier, TrainModel};
use reusebench_core::bounded::BelowOne;
use reusebench_core::train::OptimConfig;
use serde::{Deserialize, Serialize};

use super::{
    DebiasMethodSpec, TuneContext, Tuned, all_correct, trainable_frozen_bn, tune_with, tuning_batch,
};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DropoutFt {
    pub optimizer: OptimConfig,
    /// Probability of dropping a feature.
    #[serde(default = "default_p")]
    pub p: BelowOne,
}

fn default_p() -> BelowOne {
    BelowOne::of(0.5)
}

/// A classifier with dropout before its head, for training.
#[derive(Module, Debug)]
pub struct WithDropout {
    pub inner: Classifier,
    pub dropout: Dropout,
}

impl TrainModel for WithDropout {
    fn forward(&self, images: Tensor<4>) -> Tensor<2> {
        let features = self.inner.features(images);
        self.inner.head.forward(self.dropout.forward(features))
    }
}

impl Method for DropoutFt {}

impl DebiasMethodSpec for DropoutFt {
    fn tune(&self, start: &Classifier, ctx: &TuneContext) -> Result<Tuned, CoreError> {
        let model = WithDropout {
            inner: trainable_frozen_bn(start),
            dropout: DropoutConfig::new(self.p.get()).init(),
        };
        let x = tuning_batch(ctx.tuning, ctx.normalization, ctx.device);
        let labels = ctx.tuning.labels.clone();
        // The stopping check sees the model as it will be evaluated: no dropout.
        let solved =
            Box::new(move |m: &WithDropout| all_correct(m.inner.forward(x.clone()), &labels));
        let (model, steps, stopped_early) = tune_with(
            model,
            &self.optimizer,
            ctx,
            (Box::new(|_: &WithDropout| None), None),
            solved,
        )?;
        Ok(Tuned {
            model: model.inner,
            steps,
            stopped_early,
        })
    }
}
