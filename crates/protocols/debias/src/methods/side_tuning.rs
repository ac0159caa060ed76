//! `side-tuning` (Zhang et al. 2020): the pretrained backbone frozen (its
//! batch norm in evaluation mode), a side network blended in,
//! α·base(x) + (1 − α)·side(x); the side network and the head train. As
//! the paper initialises it (`init: copy`, the default), the side network
//! is a copy of the base whose batch norm trains, behind an identity
//! projection, so tuning starts from the pretrained model's outputs;
//! `init: random` is a fresh CIFAR ResNet-18 of `side_width`. The core's
//! `SideNet` / `Classifier::with_side`.

use reusebench_core::{Purpose, Seeds};
use reusebench_core::method::Method;
use reusebench_core::CoreError;
use reusebench_core::model::{Classifier, SideNet};
use reusebench_core::train::OptimConfig;
use serde::{Deserialize, Serialize};

use super::{DebiasMethodSpec, TuneContext, Tuned, tune_classifier};
use reusebench_core::bounded::{PositiveInt, Probability};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SideTuning {
    pub optimizer: OptimConfig,
    #[serde(default = "default_side_width")]
    pub side_width: PositiveInt,
    /// Weight of the frozen base's features.
    #[serde(default = "default_alpha")]
    pub alpha: Probability,
    /// How the side network starts: a copy of the base, or random of
    /// `side_width` (which only `random` reads).
    #[serde(default)]
    pub init: SideInit,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum SideInit {
    #[default]
    Copy,
    Random,
}

fn default_side_width() -> PositiveInt {
    PositiveInt::of(4)
}
fn default_alpha() -> Probability {
    Probability::of(0.5)
}


impl Method for SideTuning {}

impl DebiasMethodSpec for SideTuning {
    fn tune(&self, start: &Classifier, ctx: &TuneContext) -> Result<Tuned, CoreError> {
        let base_dim = start.head.weight.dims()[0];
        let side = match self.init {
            SideInit::Copy => SideNet::copy_of(start.backbone(), base_dim, ctx.device),
            SideInit::Random => {
                let mut rng = Seeds::new(ctx.seed).rng(Purpose::DebiasSide);
                SideNet::random(self.side_width.get(), base_dim, &mut rng, ctx.device)
            }
        };
        // The base is frozen (evaluation-mode batch norm) by with_side; the
        // head trains.
        let model = start.clone().with_side(side, self.alpha.get());
        tune_classifier(model, &self.optimizer, ctx, Box::new(|_: &Classifier| None))
    }
}
