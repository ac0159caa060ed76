//! Continual-learning methods. Each lives in its own file and is registered
//! once, in [`MethodConfig`] below: its YAML name, its settings and how to
//! build it. A method sees one task at a time through [`TaskContext`], which
//! offers the shared building blocks (fine-tuning with optional penalty
//! hooks, linear probing on cached features).

mod cumulative;
mod der;
mod er;
mod ewc;
mod joint;
mod l2_sp;
mod lp_ft;
mod lwf;
mod mas;
mod replay;
mod sgd;
mod side_tuning;

use std::sync::Arc;

use burn::tensor::Device;
use reusebench_data::{Augment, ImageSet, Normalization};
use serde::{Deserialize, Serialize};

pub use cumulative::Cumulative;
pub use der::DerPlusPlus;
pub use er::Er;
pub use ewc::{Ewc, FisherKind};
pub use joint::Joint;
pub use l2_sp::L2Sp;
pub use lp_ft::LpFt;
pub use lwf::Lwf;
pub use mas::Mas;
pub use replay::{ReplayBuffer, ReplayHook, ReplayLoss};
pub use sgd::Sgd;
pub use side_tuning::{SideTuning, logits_with_base};

use crate::error::CoreError;
use crate::features::cached_features;
use crate::metrics::{Coords, names};
use crate::model::Classifier;
use crate::penalties::{ImportanceKind, ParamTable, QuadraticPenalty, importance, snapshot};
use crate::progress::Progress;
use crate::train::{CurveLog, CurveSink, NoHooks, OptimConfig, Stage, TrainHooks, fit, fit_linear};

/// A method as a grid names it (`method.name`), with its settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "name", rename_all = "kebab-case", deny_unknown_fields)]
pub enum MethodConfig {
    /// Plain sequential fine-tuning of every parameter.
    Sgd(Sgd),
    /// Per task: linear probe on frozen features, then fine-tune everything.
    LpFt(LpFt),
    /// Memory Aware Synapses: quadratic penalty weighted by output sensitivity.
    Mas(Mas),
    /// Online EWC: quadratic penalty weighted by the diagonal Fisher.
    Ewc(Ewc),
    /// Learning without Forgetting: distillation on the old classes' logits.
    Lwf(Lwf),
    /// Experience replay from a reservoir buffer.
    Er(Er),
    /// Dark Experience Replay++: replay with logit matching.
    #[serde(rename = "der++")]
    DerPlusPlus(DerPlusPlus),
    /// Penalty towards the pretrained weights.
    #[serde(rename = "l2-sp")]
    L2Sp(L2Sp),
    /// Frozen base, trainable side network, blended features.
    SideTuning(SideTuning),
    /// One training on the union of all tasks after the last: the upper
    /// reference (Mammoth's `joint`).
    Joint(Joint),
    /// At every task, training on the union of the tasks so far.
    Cumulative(Cumulative),
}

impl MethodConfig {
    pub fn name(&self) -> &'static str {
        match self {
            MethodConfig::Sgd(_) => "sgd",
            MethodConfig::LpFt(_) => "lp-ft",
            MethodConfig::Mas(_) => "mas",
            MethodConfig::Ewc(_) => "ewc",
            MethodConfig::Lwf(_) => "lwf",
            MethodConfig::Er(_) => "er",
            MethodConfig::DerPlusPlus(_) => "der++",
            MethodConfig::L2Sp(_) => "l2-sp",
            MethodConfig::SideTuning(_) => "side-tuning",
            MethodConfig::Joint(_) => "joint",
            MethodConfig::Cumulative(_) => "cumulative",
        }
    }

    /// The name tables show: the YAML name, `+lp` when a linear probe runs
    /// before each task's training, `side-tuning-lifelong` for the
    /// lifelong variant.
    pub fn label(&self) -> String {
        if let MethodConfig::SideTuning(m) = self
            && m.lifelong
        {
            return "side-tuning-lifelong".into();
        }
        let lp = match self {
            MethodConfig::Mas(m) => m.lp.is_some(),
            MethodConfig::Ewc(m) => m.lp.is_some(),
            MethodConfig::Lwf(m) => m.lp.is_some(),
            MethodConfig::Er(m) => m.lp.is_some(),
            MethodConfig::DerPlusPlus(m) => m.lp.is_some(),
            MethodConfig::L2Sp(m) => m.lp.is_some(),
            _ => false,
        };
        if lp {
            format!("{}+lp", self.name())
        } else {
            self.name().to_string()
        }
    }

    /// The method with fresh state, ready for the first task.
    pub fn build(&self) -> Box<dyn TaskLearner> {
        fn learner<M: ContinualMethod + Clone + 'static>(m: &M) -> Box<dyn TaskLearner> {
            Box::new(Learner {
                method: m.clone(),
                state: M::State::default(),
            })
        }
        match self {
            MethodConfig::Sgd(m) => learner(m),
            MethodConfig::LpFt(m) => learner(m),
            MethodConfig::Mas(m) => learner(m),
            MethodConfig::Ewc(m) => learner(m),
            MethodConfig::Lwf(m) => learner(m),
            MethodConfig::Er(m) => learner(m),
            MethodConfig::DerPlusPlus(m) => learner(m),
            MethodConfig::L2Sp(m) => learner(m),
            MethodConfig::SideTuning(m) => learner(m),
            MethodConfig::Joint(m) => learner(m),
            MethodConfig::Cumulative(m) => learner(m),
        }
    }

    /// Checks settings that types cannot (ranges, consistency).
    pub fn validate(&self) -> Result<(), CoreError> {
        self.build().validate()
    }
}

/// A method's config with the state it carries from task to task.
pub trait TaskLearner {
    fn validate(&self) -> Result<(), CoreError>;
    /// Trains `model` on the task `ctx` describes and returns it.
    fn learn_task(&mut self, model: Classifier, ctx: &TaskContext)
    -> Result<Classifier, CoreError>;
    /// The model task `task` is evaluated with, when the method keeps one
    /// per task (lifelong side-tuning); `None`: the current model.
    fn task_model(&self, task: usize) -> Option<Classifier>;
}

struct Learner<M: ContinualMethod> {
    method: M,
    state: M::State,
}

impl<M: ContinualMethod> TaskLearner for Learner<M> {
    fn validate(&self) -> Result<(), CoreError> {
        self.method.validate()
    }

    fn learn_task(
        &mut self,
        model: Classifier,
        ctx: &TaskContext,
    ) -> Result<Classifier, CoreError> {
        self.method.learn_task(&mut self.state, model, ctx)
    }

    fn task_model(&self, task: usize) -> Option<Classifier> {
        self.method.task_model(&self.state, task)
    }
}

/// An optional linear-probe stage before a method's own training (LP-FT's
/// first stage), for methods where it makes sense: the penalty, distillation
/// and replay methods (`mas`, `ewc`, `lwf`, `er`, `der++`, `l2-sp`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LpStage {
    pub epochs: usize,
    pub optimizer: OptimConfig,
    /// Train only this task's new classes' head columns (weights and
    /// biases), leaving the old and the future ones as they are, as
    /// Mammoth's LwF warm-up does. Off: the probe trains the whole head
    /// (today's default; the LP-FT paper's choice was not confirmed).
    /// Domain-incremental tasks have no new classes: the whole head.
    #[serde(default)]
    pub new_classes_only: bool,
}

impl LpStage {
    pub fn validate(&self) -> Result<(), CoreError> {
        self.optimizer.validate("method.lp.optimizer")
    }

    /// Runs the probe when configured.
    pub fn run(
        stage: &Option<LpStage>,
        model: Classifier,
        ctx: &TaskContext,
    ) -> Result<Classifier, CoreError> {
        match stage {
            Some(lp)
                if lp.epochs > 0 && lp.new_classes_only && ctx.old_classes < ctx.seen_classes =>
            {
                ctx.linear_probe_columns(
                    model,
                    lp.epochs,
                    &lp.optimizer,
                    ctx.old_classes..ctx.seen_classes,
                )
            }
            Some(lp) if lp.epochs > 0 => ctx.linear_probe(model, lp.epochs, &lp.optimizer),
            _ => Ok(model),
        }
    }
}

/// A continual-learning method: learns the tasks one after another. The
/// method's value is its configuration; what it carries from one task to
/// the next (anchors, importances, buffers, the previous model) is its
/// `State`, kept apart by the runner of the sequence.
pub trait ContinualMethod {
    type State: Default;
    fn validate(&self) -> Result<(), CoreError> {
        Ok(())
    }
    /// Trains `model` on the task `ctx` describes and returns it.
    fn learn_task(
        &self,
        state: &mut Self::State,
        model: Classifier,
        ctx: &TaskContext,
    ) -> Result<Classifier, CoreError>;
    /// The model task `task` is evaluated with, when the method keeps one
    /// per task; `None` (the default): the model as it is now.
    fn task_model(&self, _state: &Self::State, _task: usize) -> Option<Classifier> {
        None
    }
}

/// Everything a method may use while learning one task.
pub struct TaskContext<'a> {
    pub task: usize,
    pub num_tasks: usize,
    /// The task's training images, labels already in the sequence's numbering.
    pub train: Arc<ImageSet>,
    /// Training sets of tasks 0..=task (only `joint` and `cumulative` may use past ones).
    pub history: &'a [Arc<ImageSet>],
    /// Logit columns earlier tasks trained (`0..old_classes`): the old
    /// classes in class-incremental sequences, every class in
    /// domain-incremental ones after the first task.
    pub old_classes: usize,
    /// Logit columns of the classes seen so far, this task's included
    /// (class-IL: the end of this task's classes; domain-IL: all of them).
    pub seen_classes: usize,
    /// Size of the shared head (all classes of the sequence).
    pub num_classes: usize,
    pub batch_size: usize,
    pub eval_batch_size: usize,
    pub augment: Augment,
    pub normalization: Normalization,
    /// The cell's seed, mixed with the task index for this task's streams.
    pub seed: u64,
    /// The autodiff device the model lives on.
    pub device: &'a Device,
    /// Features of frozen networks, shared by the whole run.
    pub features: &'a crate::feature_cache::FeatureCache,
    pub progress: &'a dyn Progress,
    /// Where every stage records its curve (coordinates `task`, `stage`, `epoch`).
    pub curves: &'a CurveLog,
}

impl<'a> TaskContext<'a> {
    /// A training stage over this task's data.
    pub fn stage<'o>(
        &self,
        label: &str,
        salt: u64,
        epochs: usize,
        optim: &'o OptimConfig,
    ) -> Stage<'o>
    where
        'a: 'o,
    {
        Stage {
            name: format!("task {}/{} · {label}", self.task + 1, self.num_tasks),
            epochs,
            batch_size: self.batch_size,
            optim,
            augment: self.augment,
            normalization: self.normalization,
            num_classes: self.num_classes,
            seed: self
                .seed
                .wrapping_mul(1_000_003)
                .wrapping_add(self.task as u64 * 101 + salt),
            curve: Some(CurveSink {
                log: self.curves,
                coords: Coords::new()
                    .with(names::TASK, self.task)
                    .with(names::STAGE, label),
            }),
        }
    }

    /// Fine-tunes every parameter for `epochs`, adding `hooks`' penalties.
    pub fn fine_tune(
        &self,
        model: Classifier,
        epochs: usize,
        optim: &OptimConfig,
        hooks: &mut dyn TrainHooks<Classifier>,
    ) -> Result<Classifier, CoreError> {
        self.fine_tune_on(model, &self.train, epochs, optim, hooks)
    }

    /// Fine-tunes with a custom forward pass (see [`crate::train::fit_with`]).
    pub fn fine_tune_with(
        &self,
        model: Classifier,
        epochs: usize,
        optim: &OptimConfig,
        hooks: &mut dyn TrainHooks<Classifier>,
        forward: crate::train::Forward<Classifier>,
    ) -> Result<Classifier, CoreError> {
        let stage = self.stage("fine-tune", 1, epochs, optim);
        Ok(crate::train::fit_with(
            model,
            &self.train,
            &stage,
            hooks,
            forward,
            self.device,
            self.progress,
        )?
        .0)
    }

    /// Fine-tunes on `data` instead of the task's own training set.
    pub fn fine_tune_on(
        &self,
        model: Classifier,
        data: &Arc<ImageSet>,
        epochs: usize,
        optim: &OptimConfig,
        hooks: &mut dyn TrainHooks<Classifier>,
    ) -> Result<Classifier, CoreError> {
        let stage = self.stage("fine-tune", 1, epochs, optim);
        Ok(fit(model, data, &stage, hooks, self.device, self.progress)?.0)
    }

    /// The frozen model's features of this task's training images (un-
    /// augmented, evaluation-mode batch norm), from the run's cache.
    fn train_features(&self, model: &Classifier) -> Arc<crate::features::Rows> {
        cached_features(
            self.features,
            model,
            &self.train,
            self.eval_batch_size,
            self.normalization,
            self.device,
        )
    }

    /// [`TaskContext::linear_probe`] restricted to the head's `columns`
    /// (this task's classes): only those rows of the weight and bias train,
    /// on the cross-entropy over those columns (labels shifted to start at
    /// 0); every other column keeps its values.
    pub fn linear_probe_columns(
        &self,
        mut model: Classifier,
        epochs: usize,
        optim: &OptimConfig,
        columns: std::ops::Range<usize>,
    ) -> Result<Classifier, CoreError> {
        use burn::module::Param;
        let feats = self.train_features(&model);
        let dim = model.head.weight.dims()[0];
        let mut sub = model.head.clone();
        // Leaves of their own (slices of the head, off the graph).
        sub.weight = Param::from_tensor(
            model
                .head
                .weight
                .val()
                .inner()
                .slice([0..dim, columns.clone()])
                .autodiff()
                .require_grad(),
        );
        sub.bias = model.head.bias.as_ref().map(|b| {
            Param::from_tensor(
                b.val()
                    .inner()
                    .slice([columns.clone()])
                    .autodiff()
                    .require_grad(),
            )
        });
        let shift = columns.start as u32;
        let labels: Vec<u32> = self.train.labels.iter().map(|&l| l - shift).collect();
        let mut stage = self.stage("linear probe", 2, epochs, optim);
        stage.num_classes = columns.len();
        let (sub, _) = fit_linear(
            sub,
            &feats.values,
            &labels,
            feats.dim,
            &stage,
            self.device,
            self.progress,
        )?;
        // Written back off the graph too, so the head's parameters stay leaves.
        let w = sub.weight.val().inner();
        model.head.weight = model.head.weight.map(|full| {
            full.inner()
                .slice_assign([0..dim, columns.clone()], w)
                .autodiff()
                .require_grad()
        });
        if let (Some(bias), Some(b)) = (model.head.bias.take(), sub.bias) {
            let b = b.val().inner();
            model.head.bias = Some(bias.map(|full| {
                full.inner()
                    .slice_assign([columns.clone()], b)
                    .autodiff()
                    .require_grad()
            }));
        }
        Ok(model)
    }

    /// Trains only the head on the frozen backbone's features. The features
    /// are computed once (un-augmented, evaluation-mode batch norm) and
    /// reused for every epoch.
    pub fn linear_probe(
        &self,
        mut model: Classifier,
        epochs: usize,
        optim: &OptimConfig,
    ) -> Result<Classifier, CoreError> {
        let feats = self.train_features(&model);
        let stage = self.stage("linear probe", 2, epochs, optim);
        let (head, _) = fit_linear(
            model.head,
            &feats.values,
            &self.train.labels,
            feats.dim,
            &stage,
            self.device,
            self.progress,
        )?;
        model.head = head;
        Ok(model)
    }
}

/// The task loop of the importance-weighted penalty methods (MAS, EWC):
/// optional linear probe; fine-tuning under `scale`·Σ Ω (θ − θ*)² once an
/// importance exists; then this task's importance, merged into the old one
/// by `merge(old, new)`, and θ* = the weights after this task.
pub(crate) fn learn_with_importance(
    state: &mut Option<(ParamTable, ParamTable)>,
    kind: ImportanceKind,
    samples: Option<usize>,
    scale: f64,
    merge: impl FnOnce(ParamTable, ParamTable) -> ParamTable,
    lp: &Option<LpStage>,
    epochs: usize,
    optimizer: &OptimConfig,
    model: Classifier,
    ctx: &TaskContext,
) -> Result<Classifier, CoreError> {
    let model = LpStage::run(lp, model, ctx)?;
    let model = match &*state {
        Some((weights, anchor)) => ctx.fine_tune(
            model,
            epochs,
            optimizer,
            &mut QuadraticPenalty {
                anchor,
                weights: Some(weights),
                scale,
            },
        )?,
        None => ctx.fine_tune(model, epochs, optimizer, &mut NoHooks)?,
    };
    let new = importance(
        &model,
        &ctx.train,
        ctx.normalization,
        kind,
        samples,
        ctx.seed ^ ctx.task as u64,
        ctx.device,
        ctx.progress,
    )?;
    let merged = match state.take() {
        Some((old, _)) => merge(old, new),
        None => new,
    };
    *state = Some((merged, snapshot(&model)));
    Ok(model)
}
