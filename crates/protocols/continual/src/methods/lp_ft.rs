//! `lp-ft`: for every task, first a linear probe (only the head trains, on
//! the frozen backbone's features), then fine-tuning of everything starting
//! from that head (Kumar et al. 2022; Sun et al. 2023 for the continual case).
//!
//! In class-incremental tasks the head is shared: by default the probe
//! trains only this task's new classes' columns (a fresh head for the new
//! classes, as the paper's per-task head), so it never rewrites what earlier
//! tasks' columns learned. `new_classes_only: false` probes the whole head
//! on the current task's data (this project's LP-FT before 2026-12-06),
//! which pushes the old classes' logits down before fine-tuning starts.

use reusebench_core::method::Method;
use serde::{Deserialize, Serialize};

use super::{ContinualMethod, Learned, LpStage, TaskContext};
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
    /// Class-incremental tasks: probe only the new classes' head columns.
    /// Domain-incremental tasks have no new classes: the whole head.
    #[serde(default = "yes")]
    pub new_classes_only: bool,
}

fn yes() -> bool {
    true
}

impl Method for LpFt {}

impl ContinualMethod for LpFt {
    type State = ();
    fn learn_task(&self, _: &mut (), model: Classifier, ctx: &TaskContext) -> Learned {
        let probe = LpStage {
            epochs: self.lp_epochs,
            optimizer: self.lp_optimizer.clone(),
            new_classes_only: self.new_classes_only,
        };
        let model = LpStage::run(&Some(probe), model, ctx)?;
        ctx.fine_tune(model, self.ft_epochs, &self.ft_optimizer, &mut NoHooks)
    }
}
