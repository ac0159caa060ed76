//! `side-tuning` (Zhang et al. 2020): the pretrained backbone is frozen
//! (weights and batch-norm statistics); a small side network — a CIFAR
//! ResNet-18 of width `side_width` with a linear projection to the
//! backbone's feature size — trains with the head on the blend
//! α·base(x) + (1 − α)·side(x). α is fixed, or moves linearly from `alpha`
//! at the first task to `alpha_final` at the last. Without augmentation the
//! base's features are computed once (feature cache) instead of every step.
//! `lifelong: true` is the paper's lifelong variant: a side network and a
//! head per task, each task evaluated with its own, each side network
//! starting as a copy of the base (`init: copy`, the paper's; `random`
//! gives the small network above).

use reusebench_core::bounded::{PositiveInt, Probability};
use reusebench_core::{Purpose, Seeds};
use reusebench_core::method::Method;
use serde::{Deserialize, Serialize};

use super::{ContinualMethod, Learned, TaskContext};
use reusebench_core::CoreError;
use reusebench_core::features::{Rows, cached_features};
use reusebench_core::model::{Classifier, SideNet, linear_head};
use reusebench_core::train::{NoHooks, OptimConfig};
use burn::tensor::{Tensor, TensorData};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SideTuning {
    pub epochs: usize,
    pub optimizer: OptimConfig,
    /// Base width of the side network.
    #[serde(default = "default_side_width")]
    pub side_width: PositiveInt,
    /// Weight of the base features in the blend.
    #[serde(default = "default_alpha")]
    pub alpha: Probability,
    /// α at the last task (linear schedule over tasks); fixed α when absent.
    #[serde(default)]
    pub alpha_final: Option<Probability>,
    /// Learn α (sigmoid of a parameter initialised at 0, so 0.5 at the
    /// start) with the side network, instead of fixing or scheduling it.
    #[serde(default)]
    pub learn_alpha: bool,
    /// Zhang et al.'s lifelong variant: a new side network and a new head
    /// for every task, trained on that task alone; task t is evaluated
    /// with its own side network and head (task-IL: the class-IL numbers
    /// of this variant use each task's own model too, and mean little).
    /// Off: one side network and head for the whole sequence, the
    /// class-IL adaptation.
    #[serde(default)]
    pub lifelong: bool,
    /// How a side network starts: `copy` (Zhang et al.: a copy of the
    /// base, its batch norm training, behind an identity projection) or
    /// `random` (a fresh CIFAR ResNet-18 of `side_width`). Absent: `copy`
    /// for the lifelong variant, `random` otherwise (the class-IL
    /// adaptation's setup before 2026-12-06).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub init: Option<SideInit>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum SideInit {
    Copy,
    Random,
}

fn default_side_width() -> PositiveInt {
    PositiveInt::of(8)
}
fn default_alpha() -> Probability {
    Probability::of(0.5)
}

impl SideTuning {
    fn alpha_at(&self, task: usize, tasks: usize) -> f64 {
        let alpha = self.alpha.get();
        match self.alpha_final {
            Some(end) if tasks > 1 => alpha + (end.get() - alpha) * task as f64 / (tasks - 1) as f64,
            _ => alpha,
        }
    }
}

impl SideTuning {
    /// The lifelong variant keeps each task's model for its evaluation.
    fn keep(&self, state: &mut Vec<Classifier>, trained: Classifier) -> Classifier {
        if self.lifelong {
            state.push(trained.clone());
        }
        trained
    }
}

impl Method for SideTuning {
    fn label(&self, name: &'static str) -> String {
        if self.lifelong {
            "side-tuning-lifelong".into()
        } else {
            name.into()
        }
    }

    fn validate(&self) -> Result<(), CoreError> {
        if self.learn_alpha && self.alpha_final.is_some() {
            return Err(CoreError::config(
                "method.alpha_final",
                "a learned alpha has no schedule: drop alpha_final or learn_alpha",
            ));
        }
        Ok(())
    }
}

impl ContinualMethod for SideTuning {
    /// The lifelong variant's model of every task learned so far.
    type State = Vec<Classifier>;
    fn task_model(&self, state: &Self::State, task: usize) -> Option<Classifier> {
        state.get(task).cloned()
    }

    fn learn_task(&self, state: &mut Self::State, model: Classifier, ctx: &TaskContext) -> Learned {
        let mut model = model;
        if self.lifelong {
            // A fresh side network and head on the pretrained base, per task.
            let base = model.backbone().clone();
            let mut rng = Seeds::new(ctx.seed).rng(Purpose::SideInit { task: ctx.task });
            let [features, classes] = model.head.weight.dims();
            let head = linear_head(&mut rng, features, classes, ctx.device);
            model = Classifier::new(base, head);
        }
        // The first task wraps the base; later ones keep training the side
        // (the lifelong variant starts a new one each task).
        if model.side_tuned().is_none() {
            let base_dim = model.head.weight.dims()[0];
            let stream = if self.lifelong { ctx.task as u64 } else { 0 };
            let mut rng = Seeds::new(ctx.seed).rng(Purpose::SideBatches { stream });
            let init = self.init.unwrap_or(if self.lifelong {
                SideInit::Copy
            } else {
                SideInit::Random
            });
            let side = match init {
                SideInit::Copy => SideNet::copy_of(model.backbone(), base_dim, ctx.device),
                SideInit::Random => {
                    SideNet::random(self.side_width.get(), base_dim, &mut rng, ctx.device)
                }
            };
            model = if self.learn_alpha {
                model.with_learned_side(side, ctx.device)
            } else {
                model.with_side(side, self.alpha.get())
            };
        }
        if let Some(s) = model.side_tuned_mut() {
            s.alpha = self.alpha_at(ctx.task, ctx.num_tasks);
        }
        if ctx.augment.is_none() {
            // Un-augmented training images: the frozen base sees the same
            // pixels every epoch, so its features come from the cache (one
            // base pass per image for the whole run) and only the side
            // network runs per step.
            let base = cached_features(
                ctx.features,
                &Classifier::new(model.backbone().clone(), model.head.clone()),
                &ctx.train,
                ctx.eval_batch_size,
                ctx.normalization,
                ctx.device,
            );
            let forward = |m: &Classifier, x: Tensor<4>, indices: &[usize]| {
                logits_with_base(m, x, &base, indices)
            };
            let trained =
                ctx.fine_tune_with(model, self.epochs, &self.optimizer, &mut NoHooks, &forward)?;
            return Ok(self.keep(state, trained));
        }
        let trained = ctx.fine_tune(model, self.epochs, &self.optimizer, &mut NoHooks)?;
        Ok(self.keep(state, trained))
    }
}

/// Side-tuning's logits for a batch whose base features are already known
/// (`base` rows at `indices`): what `model.forward(x)` computes, without
/// running the frozen base.
pub fn logits_with_base(
    model: &Classifier,
    x: Tensor<4>,
    base: &Rows,
    indices: &[usize],
) -> Tensor<2> {
    let side = model
        .side_tuned()
        .expect("a side-tuning model wraps its base");
    let rows: Vec<f32> = indices
        .iter()
        .flat_map(|&i| base.row(i).iter().copied())
        .collect();
    let base = Tensor::<2>::from_data(
        TensorData::new(rows, [indices.len(), base.dim]),
        &x.device(),
    );
    model.head.forward(side.blend(base, x))
}
