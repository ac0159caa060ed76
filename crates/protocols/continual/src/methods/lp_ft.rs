//! `lp-ft`: for every task, first a linear probe (only the head trains, on
//! the frozen backbone's features), then fine-tuning of everything starting
//! from that head (Kumar et al. 2022; Sun et al. 2023 for the continual case).

use reusebench_core::method::Method;
use serde::{Deserialize, Serialize};

use super::{ContinualMethod, Learned, TaskContext};
use reusebench_core::model::Classifier;
use reusebench_core::train::{NoHooks, OptimConfig};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LpFt {
    pub lp_epochs: usize,
    pub ft_epochs: usize,
    /// Optimizer of the linear-probe stage.
    pub lp_optimizer: OptimConfig,
    /// Optimizer of the fine-tuning stage.
    pub ft_optimizer: OptimConfig,
}

impl Method for LpFt {}

impl ContinualMethod for LpFt {
    type State = ();
    fn learn_task(&self, _: &mut (), model: Classifier, ctx: &TaskContext) -> Learned {
        let model = ctx.linear_probe(model, self.lp_epochs, &self.lp_optimizer)?;
        ctx.fine_tune(model, self.ft_epochs, &self.ft_optimizer, &mut NoHooks)
    }
}
