//! `side-tuning` (Zhang et al. 2020): the pretrained backbone frozen, a
//! small side network blended in, α·base(x) + (1 − α)·side(x); the side
//! network and the head train. The core's `SideNet` / `Classifier::with_side`.

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
        let mut rng = Seeds::new(ctx.seed).rng(Purpose::DebiasSide);
        let base_dim = start.head.weight.dims()[0];
        let side = SideNet::random(self.side_width.get(), base_dim, &mut rng, ctx.device);
        // The base is frozen (evaluation-mode batch norm) by with_side; the
        // head trains.
        let model = start.clone().with_side(side, self.alpha.get());
        tune_classifier(model, &self.optimizer, ctx, Box::new(|_: &Classifier| None))
    }
}
