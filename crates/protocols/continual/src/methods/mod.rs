//! Continual-learning methods. Each lives in its own file (a config struct
//! implementing [`Method`] and [`ContinualMethod`]) and is registered with
//! one line in [`MethodConfig`] below: its YAML name, its settings and how
//! to build it. A method sees one task at a time through [`TaskContext`], which
//! offers the shared building blocks (fine-tuning with optional penalty
//! hooks, linear probing on cached features).

mod replay;

use std::sync::Arc;

use burn::tensor::Device;
use reusebench_core::method::Method;
use reusebench_data::{Augment, ImageSet, Normalization};
use serde::{Deserialize, Serialize};

pub use ewc::FisherKind;
pub use replay::{BufferUpdate, DerPasses, ReplayBuffer, ReplayHook, ReplayLoss};
pub use side_tuning::{SideInit, logits_with_base};

use reusebench_core::features::cached_features;
use reusebench_core::metrics::{Coords, names};
use reusebench_core::model::Classifier;
use reusebench_core::penalties::{
    ImportanceKind, ParamTable, QuadraticPenalty, importance, snapshot,
};
use reusebench_core::progress::Progress;
use reusebench_core::train::{
    CurveLog, CurveSink, NoHooks, OptimConfig, Stage, TrainHooks, fit, fit_linear,
};
use reusebench_core::{CoreError, Purpose, Seeds};

/// For a method with `epochs`, `optimizer` and an optional `lp` stage
/// (invoked in its own file): its [`Training`], and its label, `name+lp`
/// when the probe runs.
macro_rules! probe_then_fine_tune {
    ($method:ty) => {
        impl $method {
            fn training(&self) -> super::Training<'_> {
                let (lp, epochs, optimizer) = (&self.lp, self.epochs, &self.optimizer);
                super::Training {
                    lp,
                    epochs,
                    optimizer,
                }
            }
        }

        impl reusebench_core::method::Method for $method {
            fn label(&self, name: &'static str) -> String {
                super::lp_label(name, &self.lp)
            }
        }
    };
}
pub(crate) use probe_then_fine_tune;

reusebench_core::register_methods! {
    /// A method as a grid names it (`method.name`), with its settings.
    pub enum MethodConfig: dyn ContinualMethodSpec {
        /// Plain sequential fine-tuning of every parameter.
        Sgd = "sgd" in sgd,
        /// Per task: linear probe on frozen features, then fine-tune everything.
        LpFt = "lp-ft" in lp_ft,
        /// Memory Aware Synapses: quadratic penalty weighted by output sensitivity.
        Mas = "mas" in mas,
        /// Online EWC: quadratic penalty weighted by the diagonal Fisher.
        Ewc = "ewc" in ewc,
        /// Learning without Forgetting: distillation on the old classes' logits.
        Lwf = "lwf" in lwf,
        /// Experience replay from a reservoir buffer.
        Er = "er" in er,
        /// Dark Experience Replay++: replay with logit matching.
        DerPlusPlus = "der++" in der,
        /// Penalty towards the pretrained weights.
        L2Sp = "l2-sp" in l2_sp,
        /// Frozen base, trainable side network, blended features.
        SideTuning = "side-tuning" in side_tuning,
        /// One training on the union of all tasks after the last: the upper
        /// reference (Mammoth's `joint`).
        Joint = "joint" in joint,
        /// At every task, training on the union of the tasks so far.
        Cumulative = "cumulative" in cumulative,
    }
}

impl MethodConfig {
    /// The method with fresh state, ready for the first task.
    pub fn build(&self) -> Box<dyn TaskLearner> {
        self.spec().build()
    }
}

/// `name+lp` when a linear probe runs before each task's training.
pub(crate) fn lp_label(name: &str, lp: &Option<LpStage>) -> String {
    if lp.is_some() {
        format!("{name}+lp")
    } else {
        name.to_string()
    }
}

/// A continual method as its registry dispatches it: a fresh learner (the
/// config with empty state) per cell.
pub trait ContinualMethodSpec {
    fn build(&self) -> Box<dyn TaskLearner>;
}

impl<M: ContinualMethod + Clone + 'static> ContinualMethodSpec for M {
    fn build(&self) -> Box<dyn TaskLearner> {
        Box::new(Learner {
            method: self.clone(),
            state: M::State::default(),
        })
    }
}

/// A method's config with the state it carries from task to task.
pub trait TaskLearner {
    /// Trains `model` on the task `ctx` describes and returns it.
    fn learn_task(&mut self, model: Classifier, ctx: &TaskContext) -> Learned;
    /// The model task `task` is evaluated with, when the method keeps one
    /// per task (lifelong side-tuning); `None`: the current model.
    fn task_model(&self, task: usize) -> Option<Classifier>;
}

struct Learner<M: ContinualMethod> {
    method: M,
    state: M::State,
}

impl<M: ContinualMethod> TaskLearner for Learner<M> {
    fn learn_task(&mut self, model: Classifier, ctx: &TaskContext) -> Learned {
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
    /// Runs the probe when configured.
    pub fn run(stage: &Option<LpStage>, model: Classifier, ctx: &TaskContext) -> Learned {
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

/// A method's own training of one task: the optional linear probe
/// ([`LpStage`]), then `epochs` of fine-tuning with `optimizer`.
pub(crate) struct Training<'a> {
    pub lp: &'a Option<LpStage>,
    pub epochs: usize,
    pub optimizer: &'a OptimConfig,
}

impl Training<'_> {
    /// The probe, then fine-tuning with `hooks`' extra terms.
    pub fn run(
        &self,
        model: Classifier,
        ctx: &TaskContext,
        hooks: &mut dyn TrainHooks<Classifier>,
    ) -> Learned {
        let model = LpStage::run(self.lp, model, ctx)?;
        ctx.fine_tune(model, self.epochs, self.optimizer, hooks)
    }
}

/// What learning a task gives back: the model, or why it failed.
pub type Learned = Result<Classifier, CoreError>;

/// A continual-learning method: learns the tasks one after another. The
/// method's value is its configuration; what it carries from one task to
/// the next (anchors, importances, buffers, the previous model) is its
/// `State`, kept apart by the runner of the sequence.
pub trait ContinualMethod: Method {
    type State: Default;
    /// Trains `model` on the task `ctx` describes and returns it.
    fn learn_task(&self, state: &mut Self::State, model: Classifier, ctx: &TaskContext) -> Learned;
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
    pub features: &'a reusebench_core::feature_cache::FeatureCache,
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
            seed: Seeds::new(self.seed).of(Purpose::Stage {
                task: self.task,
                salt,
            }),
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
    ) -> Learned {
        self.fine_tune_on(model, &self.train, epochs, optim, hooks)
    }

    /// Fine-tunes with a custom forward pass (see [`reusebench_core::train::fit_with`]).
    pub fn fine_tune_with(
        &self,
        model: Classifier,
        epochs: usize,
        optim: &OptimConfig,
        hooks: &mut dyn TrainHooks<Classifier>,
        forward: reusebench_core::train::Forward<Classifier>,
    ) -> Learned {
        let stage = self.stage("fine-tune", 1, epochs, optim);
        Ok(reusebench_core::train::fit_with(
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
    ) -> Learned {
        let stage = self.stage("fine-tune", 1, epochs, optim);
        Ok(fit(model, data, &stage, hooks, self.device, self.progress)?.0)
    }

    /// The frozen model's features of this task's training images (un-
    /// augmented, evaluation-mode batch norm), from the run's cache.
    fn train_features(&self, model: &Classifier) -> Arc<reusebench_core::features::Rows> {
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
    ) -> Learned {
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
    ) -> Learned {
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
    training: Training,
    model: Classifier,
    ctx: &TaskContext,
) -> Learned {
    let model = match &*state {
        Some((weights, anchor)) => {
            let weights = Some(weights);
            training.run(
                model,
                ctx,
                &mut QuadraticPenalty {
                    anchor,
                    weights,
                    scale,
                },
            )?
        }
        None => training.run(model, ctx, &mut NoHooks)?,
    };
    let new = importance(
        &model,
        &ctx.train,
        ctx.normalization,
        kind,
        samples,
        Seeds::new(ctx.seed).of(Purpose::Importance { task: ctx.task }),
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
