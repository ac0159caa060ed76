//! The training loop every method and protocol shares: SGD with momentum
//! over seeded, augmented, prefetched batches, for any [`TrainModel`] (the
//! model says how it computes its outputs and its loss), with hooks that
//! add loss terms (penalties, distillation, replay) and observe steps.
//! Every stage records its curve (loss, learning rate, seconds per epoch).

use std::sync::{Arc, Mutex};
use std::time::Instant;

use burn::module::Module;
use burn::nn::Linear;
use burn::optim::{GradientsParams, SgdConfig, decay::WeightDecayConfig, momentum::MomentumConfig};
use burn::tensor::loss::cross_entropy_with_logits;
use burn::tensor::{Device, Tensor, TensorData};
use rand::SeedableRng;
use rand::seq::SliceRandom;
use rand_chacha::ChaCha8Rng;
use reusebench_data::{Augment, BatchIter, BatchPlan, ImageSet, Normalization};
use serde::{Deserialize, Serialize};

use crate::bounded::{BelowOne, NonNegative, Positive};
use crate::error::CoreError;
use crate::metrics::{Coords, MetricRow, names};
use crate::model::TrainModel;
use crate::progress::Progress;
use crate::resume::{Checkpoints, Slot, StageState, TrainingGuard};

/// SGD settings of one training stage.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OptimConfig {
    pub lr: Positive,
    #[serde(default = "default_momentum")]
    pub momentum: BelowOne,
    #[serde(default = "no_weight_decay")]
    pub weight_decay: NonNegative,
    #[serde(default)]
    pub schedule: Schedule,
}

fn default_momentum() -> BelowOne {
    BelowOne::of(0.9)
}

fn no_weight_decay() -> NonNegative {
    NonNegative::of(0.0)
}

impl OptimConfig {
    /// SGD at `lr` with the grids' defaults: momentum 0.9, no weight
    /// decay, a constant rate. Panics if `lr` is not > 0 (for code and
    /// tests; grids are checked as they are read).
    pub fn sgd(lr: f64) -> Self {
        Self {
            lr: Positive::of(lr),
            momentum: default_momentum(),
            weight_decay: no_weight_decay(),
            schedule: Schedule::Constant,
        }
    }

    /// The same with `momentum` (panics outside [0, 1)).
    pub fn with_momentum(mut self, momentum: f64) -> Self {
        self.momentum = BelowOne::of(momentum);
        self
    }

    pub(crate) fn optimizer(&self) -> burn::optim::ModuleOptimizer {
        let mut sgd = SgdConfig::new();
        if self.momentum.get() > 0.0 {
            sgd = sgd.with_momentum(Some(
                MomentumConfig::new()
                    .with_momentum(self.momentum.get())
                    .with_dampening(0.0),
            ));
        }
        if self.weight_decay.get() > 0.0 {
            sgd =
                sgd.with_weight_decay(Some(WeightDecayConfig::new(self.weight_decay.get() as f32)));
        }
        sgd.init()
    }

    /// Learning rate at `step` of `total` steps.
    pub fn lr_at(&self, step: usize, total: usize) -> f64 {
        match self.schedule {
            Schedule::Constant => self.lr.get(),
            Schedule::Cosine => {
                let t = step as f64 / total.max(1) as f64;
                0.5 * self.lr.get() * (1.0 + (std::f64::consts::PI * t).cos())
            }
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Schedule {
    #[default]
    Constant,
    /// Cosine decay to zero over the stage.
    Cosine,
}

/// Where a stage's per-epoch curve goes: every epoch adds its mean loss,
/// its learning rate and its seconds as rows at `coords` + `epoch`.
#[derive(Debug, Clone)]
pub struct CurveSink<'a> {
    pub log: &'a CurveLog,
    pub coords: Coords,
}

/// Where a cell's rows go as they are made, before the cell ends (a live
/// file a researcher watches, TensorBoard): a crash keeps what was sent.
pub trait LiveRows: Send + Sync {
    fn row(&self, row: &MetricRow);
}

/// The curve rows of a cell's training stages, in the order they ran,
/// each also sent live where a sink is set.
/// It also holds the cell's checkpoints, when the runner keeps them: the
/// stages that record a curve are the ones a cell checkpoints.
#[derive(Default)]
pub struct CurveLog {
    rows: Mutex<Vec<MetricRow>>,
    live: Mutex<Option<Arc<dyn LiveRows>>>,
    checkpoints: Mutex<Option<Arc<Checkpoints>>>,
}

impl std::fmt::Debug for CurveLog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CurveLog").finish_non_exhaustive()
    }
}

impl CurveLog {
    pub fn push(&self, row: MetricRow) {
        self.send(&row);
        self.rows.lock().expect("curve log").push(row);
    }

    /// How many rows the log holds.
    pub fn len(&self) -> usize {
        self.rows.lock().expect("curve log").len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Copies of the rows from position `start` on (what a part of a
    /// cell added, to be stored and replayed with [`CurveLog::push`]).
    pub fn since(&self, start: usize) -> Vec<MetricRow> {
        let rows = self.rows.lock().expect("curve log");
        rows.get(start..)
            .map(<[MetricRow]>::to_vec)
            .unwrap_or_default()
    }

    /// Every row so far, leaving the log empty.
    pub fn take(&self) -> Vec<MetricRow> {
        std::mem::take(&mut *self.rows.lock().expect("curve log"))
    }

    /// Sends every row from now on to `live` as well.
    pub fn set_live(&self, live: Arc<dyn LiveRows>) {
        *self.live.lock().expect("curve log") = Some(live);
    }

    /// Checkpoints every stage with a curve into `checkpoints` (see [`crate::resume`]).
    pub fn set_checkpoints(&self, checkpoints: Arc<Checkpoints>) {
        *self.checkpoints.lock().expect("curve log") = Some(checkpoints);
    }

    /// The cell's checkpoints, for a stage that records its curve in a
    /// log of its own (it then shares the cell's stage numbering).
    pub fn checkpoints(&self) -> Option<Arc<Checkpoints>> {
        self.checkpoints.lock().expect("curve log").clone()
    }

    fn slot(&self) -> Option<Slot> {
        self.checkpoints
            .lock()
            .expect("curve log")
            .as_ref()
            .map(|c| c.slot())
    }

    /// Sends `row` live only (a protocol's per-round or per-task row,
    /// returned with the cell's rows at its end).
    pub fn send(&self, row: &MetricRow) {
        if let Some(live) = self.live.lock().expect("curve log").as_ref() {
            live.row(row);
        }
    }

    fn epoch(
        &self,
        coords: &Coords,
        epoch: usize,
        loss: f64,
        lr: f64,
        seconds: f64,
    ) -> Vec<MetricRow> {
        let at = coords.clone().with(names::EPOCH, epoch);
        let rows = vec![
            MetricRow::at(names::CURVE_LOSS, loss, at.clone()),
            MetricRow::at(names::CURVE_LR, lr, at.clone()),
            MetricRow::at(names::CURVE_SECONDS, seconds, at),
        ];
        for row in &rows {
            self.push(row.clone());
        }
        rows
    }
}

/// One training stage: how many epochs over which data, with which settings.
#[derive(Debug, Clone)]
pub struct Stage<'a> {
    pub name: String,
    pub epochs: usize,
    pub batch_size: usize,
    pub optim: &'a OptimConfig,
    pub augment: Augment,
    pub normalization: Normalization,
    pub num_classes: usize,
    /// Seeds shuffling and augmentation of this stage.
    pub seed: u64,
    /// Where the stage records its curve; `None` records nothing.
    pub curve: Option<CurveSink<'a>>,
}

impl Stage<'_> {
    fn record_epoch(&self, epoch: usize, loss: f64, lr: f64, started: Instant) -> Vec<MetricRow> {
        match &self.curve {
            Some(sink) => sink.log.epoch(
                &sink.coords,
                epoch,
                loss,
                lr,
                started.elapsed().as_secs_f64(),
            ),
            None => Vec::new(),
        }
    }
}

/// One training step as hooks see it.
pub struct Step<'a> {
    /// The augmented, normalised batch on the training device.
    pub images: &'a Tensor<4>,
    pub labels: &'a [u32],
    /// Positions of the batch's images in the stage's training set.
    pub indices: &'a [usize],
    /// The model's logits on `images` (before the update).
    pub logits: &'a Tensor<2>,
    /// Logits of the rows [`TrainHooks::extra_batch`] appended, from the same pass.
    pub extra_logits: Option<&'a Tensor<2>>,
    /// The stage's normalisation and augmentation, for hooks that build batches of their own.
    pub stage: &'a Stage<'a>,
}

/// What methods add to the shared loop: extra loss terms on every batch
/// (penalties, distillation, replay) and bookkeeping after every update.
pub trait TrainHooks<M> {
    /// Images to append to this step's batch (replay). They go through the
    /// same forward pass as the batch, so batch norm normalises one mixed
    /// batch, as when a replay method concatenates; their logits reach
    /// [`TrainHooks::extra_loss`] as `Step::extra_logits`.
    fn extra_batch(&mut self, _stage: &Stage, _device: &Device) -> Option<Tensor<4>> {
        None
    }
    /// Labels of the rows [`TrainHooks::extra_batch`] appended, when those
    /// rows join the batch's own loss: the loop then takes the model's loss
    /// over the concatenated batch, one mean over all its rows (Mammoth's
    /// `er.py`). `None`: the appended rows count only through `extra_loss`.
    fn extra_labels(&self) -> Option<&[u32]> {
        None
    }
    /// Restrict the batch's loss to the first `n` logit columns (the classes
    /// seen so far: Mammoth's LwF takes its cross-entropy over those, not
    /// over future classes). `None`: every column.
    fn loss_columns(&self) -> Option<usize> {
        None
    }
    /// An extra term added to the batch's cross-entropy.
    fn extra_loss(&mut self, _model: &M, _step: &Step) -> Result<Option<Tensor<1>>, CoreError> {
        Ok(None)
    }
    /// Called after the optimizer step (e.g. to fill a replay buffer).
    fn after_step(&mut self, _step: &Step) {}
    /// The model after the optimizer step, changed by the method if it
    /// must (a proximal step for a penalty: the optimizer sees only the
    /// loss's gradient, the penalty is applied exactly). `lr` is the step's.
    fn after_update(&mut self, model: M, _lr: f64) -> M {
        model
    }
    /// Called with the batch's gradients before the optimizer applies them
    /// (cost tracking: the gradient norm).
    fn after_backward(&mut self, _model: &M, _grads: &GradientsParams) {}
    /// Called after every epoch with the model as it stands; `Stop` ends the
    /// stage there (training to a target accuracy, early stopping).
    fn after_epoch(&mut self, _epoch: usize, _model: &M) -> Result<EpochControl, CoreError> {
        Ok(EpochControl::Continue)
    }
    /// The hooks' own state between two steps, for a checkpoint inside the
    /// stage ([`crate::resume`]): whatever the calls above change that the
    /// next step depends on (a replay buffer and its random stream, a cost
    /// tracker's sums). Hooks that only read keep the default: nothing.
    fn save_state(&self) -> Result<Vec<u8>, CoreError> {
        Ok(Vec::new())
    }
    /// Sets back the state [`TrainHooks::save_state`] wrote.
    fn restore_state(&mut self, _state: &[u8]) -> Result<(), CoreError> {
        Ok(())
    }
}

/// What [`TrainHooks::after_epoch`] tells the loop.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EpochControl {
    Continue,
    Stop,
}

/// No extra terms: plain fine-tuning.
pub struct NoHooks;
impl<M> TrainHooks<M> for NoHooks {}

/// What a stage reports back.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize)]
pub struct StageStats {
    pub last_epoch_loss: f64,
    pub batches: usize,
    /// Epochs run (fewer than the stage's when a hook stopped it).
    pub epochs: usize,
}

/// An epoch's cross-entropy so far: its sum and its batches.
#[derive(Default)]
struct EpochLoss {
    sum: f64,
    batches: usize,
}

impl EpochLoss {
    fn add(&mut self, ce: f32, progress: &dyn Progress) {
        self.sum += ce as f64;
        self.batches += 1;
        progress.batch(ce);
    }
}

impl StageStats {
    /// Closes `epoch`: its mean loss, its batches, its curve point (the
    /// rate and start time of the epoch in `at`).
    fn end_epoch(
        &mut self,
        stage: &Stage,
        epoch: usize,
        loss: EpochLoss,
        at: (f64, Instant),
        progress: &dyn Progress,
    ) -> Vec<MetricRow> {
        progress.end();
        self.last_epoch_loss = loss.sum / loss.batches.max(1) as f64;
        self.batches += loss.batches;
        self.epochs = epoch + 1;
        stage.record_epoch(epoch, self.last_epoch_loss, at.0, at.1)
    }
}

/// Where a stage stands when it writes a checkpoint: the epoch to
/// continue and the batches of it done (with their summed loss and the
/// epoch's rate), the steps, the stats, whether it is finished, its curve.
struct Reached<'c> {
    epoch: usize,
    batch: usize,
    epoch_loss: f64,
    epoch_lr: f64,
    step: usize,
    stats: StageStats,
    finished: bool,
    curve: &'c [MetricRow],
}

/// One-hot targets `[labels.len(), classes]` on `device`.
pub fn one_hot(labels: &[u32], classes: usize, device: &Device) -> Tensor<2> {
    let mut v = vec![0f32; labels.len() * classes];
    for (i, &l) in labels.iter().enumerate() {
        v[i * classes + l as usize] = 1.0;
    }
    Tensor::from_data(TensorData::new(v, [labels.len(), classes]), device)
}

fn epoch_seed(seed: u64, epoch: usize) -> u64 {
    reusebench_seeds::Seeds::new(seed).of(reusebench_seeds::Purpose::Epoch { epoch })
}

fn check_finite(stage: &str, batch: usize, loss: f32) -> Result<(), CoreError> {
    if loss.is_finite() {
        Ok(())
    } else {
        Err(CoreError::NonFinite {
            stage: stage.to_string(),
            batch,
            value: loss,
        })
    }
}

/// Batches drop their last partial batch (batch norm needs more than one
/// row): a set smaller than a batch would train no step at all.
fn check_one_batch(data: &ImageSet, stage: &Stage) -> Result<(), CoreError> {
    if stage.epochs > 0 && data.len() < stage.batch_size {
        return Err(CoreError::config(
            "batch_size",
            format!(
                "{}: {} training image(s), fewer than one batch of {}; with the last \
                 partial batch dropped it would train no step (lower batch_size)",
                stage.name,
                data.len(),
                stage.batch_size
            ),
        ));
    }
    Ok(())
}

/// Trains every trainable parameter of `model` (on an autodiff `device`)
/// for the stage.
pub fn fit<M: TrainModel>(
    model: M,
    data: &Arc<ImageSet>,
    stage: &Stage,
    hooks: &mut dyn TrainHooks<M>,
    device: &Device,
    progress: &dyn Progress,
) -> Result<(M, StageStats), CoreError> {
    fit_with(
        model,
        data,
        stage,
        hooks,
        &|m: &M, x: Tensor<4>, _: &[usize]| m.forward(x),
        device,
        progress,
    )
}

/// The logits of a batch: the model's forward pass, or one that reuses
/// precomputed parts (side-tuning's cached base features). Gets the batch's
/// positions in the training set.
pub type Forward<'a, M> = &'a dyn Fn(&M, Tensor<4>, &[usize]) -> Tensor<2>;

/// [`fit`] with a custom forward pass.
pub fn fit_with<M: TrainModel>(
    mut model: M,
    data: &Arc<ImageSet>,
    stage: &Stage,
    hooks: &mut dyn TrainHooks<M>,
    forward: Forward<M>,
    device: &Device,
    progress: &dyn Progress,
) -> Result<(M, StageStats), CoreError> {
    check_one_batch(data, stage)?;
    let mut optim = stage.optim.optimizer();
    let per_epoch = data.len().div_ceil(stage.batch_size.max(1));
    let total = per_epoch * stage.epochs;
    let mut step = 0;
    let mut stats = StageStats::default();
    // Where the stage checkpoints, and what it resumes from.
    let slot = stage.curve.as_ref().and_then(|c| c.log.slot());
    let _training = slot.as_ref().map(|_| TrainingGuard::enter());
    let mut curve: Vec<MetricRow> = Vec::new();
    let (mut from_epoch, mut from_batch, mut from_loss, mut from_lr) = (0, 0, 0.0, 0.0);
    let mut finished = false;
    let start = match &slot {
        None => None,
        Some(slot) => {
            let (print, ids) = crate::resume::fingerprint(&model);
            match slot.load(&model, optim, stage, print, &ids)? {
                Ok(restored) => {
                    hooks.restore_state(&restored.hooks)?;
                    let state = restored.state;
                    (model, optim) = (restored.model, restored.optimizer);
                    (step, stats, finished) = (state.step, state.stats, state.finished);
                    (from_epoch, from_batch) = (state.epoch, state.batch);
                    (from_loss, from_lr) = (state.epoch_loss, state.epoch_lr);
                    if let Some(sink) = &stage.curve {
                        for row in &state.curve {
                            sink.log.push(row.clone());
                        }
                    }
                    curve = state.curve;
                    progress.note(&format!(
                        "{}: resumed from its checkpoint (stage {}, epoch {}, batch {}{})",
                        stage.name,
                        slot.index,
                        from_epoch,
                        from_batch,
                        if finished { ", done" } else { "" }
                    ));
                }
                Err(fresh) => optim = fresh,
            }
            Some((print, ids))
        }
    };
    // Writes the stage's state as it stands.
    let save = |model: &M,
                optim: &burn::optim::ModuleOptimizer,
                hooks: &dyn TrainHooks<M>,
                at: Reached|
     -> Result<(), CoreError> {
        let (Some(slot), Some((print, ids))) = (&slot, &start) else {
            return Ok(());
        };
        let state = StageState {
            name: stage.name.clone(),
            seed: stage.seed,
            epochs: stage.epochs,
            start: *print,
            epoch: at.epoch,
            batch: at.batch,
            epoch_loss: at.epoch_loss,
            epoch_lr: at.epoch_lr,
            step: at.step,
            stats: at.stats,
            finished: at.finished,
            curve: at.curve.to_vec(),
            ids: ids.clone(),
        };
        slot.save(model, optim, &hooks.save_state()?, &state)
    };
    let epochs = if finished {
        0..0
    } else {
        from_epoch..stage.epochs
    };
    for epoch in epochs {
        let plan = BatchPlan {
            batch_size: stage.batch_size,
            shuffle_seed: Some(epoch_seed(stage.seed, epoch)),
            augment: stage.augment,
            normalization: stage.normalization,
            prefetch: 4,
            drop_last: true,
        };
        let batches = BatchIter::new(Arc::clone(data), plan);
        // A stage resumed inside an epoch skips the batches it had done.
        let skip = if epoch == from_epoch { from_batch } else { 0 };
        let lr = if skip > 0 {
            from_lr
        } else {
            stage.optim.lr_at(step, total)
        };
        let started = Instant::now();
        progress.begin(
            &format!("{} · epoch {}/{}", stage.name, epoch + 1, stage.epochs),
            batches.len(),
        );
        let mut loss_so_far = EpochLoss::default();
        if skip > 0 {
            (loss_so_far.sum, loss_so_far.batches) = (from_loss, skip);
        }
        for (b, batch) in batches.enumerate() {
            if b < skip {
                continue;
            }
            let x = Tensor::<4>::from_data(TensorData::new(batch.images, batch.shape), device);
            let y = one_hot(&batch.labels, stage.num_classes, device);
            let n = batch.labels.len();
            let (logits, extra_logits, all) = match hooks.extra_batch(stage, device) {
                None => (forward(&model, x.clone(), &batch.indices), None, None),
                Some(extra) => {
                    // A custom forward knows only the batch's own rows: the
                    // appended ones take the plain forward pass.
                    let m = extra.dims()[0];
                    let all = model.forward(Tensor::cat(vec![x.clone(), extra], 0));
                    let (own, appended) =
                        (all.clone().narrow(0, 0, n), all.clone().narrow(0, n, m));
                    (own, Some(appended), Some(all))
                }
            };
            // Appended rows with labels join the batch's own loss: one mean
            // over the concatenated batch.
            let columns = hooks
                .loss_columns()
                .map_or(stage.num_classes, |c| c.min(stage.num_classes));
            let restrict = |l: Tensor<2>| {
                if columns < stage.num_classes {
                    l.narrow(1, 0, columns)
                } else {
                    l
                }
            };
            let mut loss = match (all, hooks.extra_labels()) {
                (Some(all), Some(extra)) => {
                    let labels: Vec<u32> = batch.labels.iter().chain(extra).copied().collect();
                    model.loss(restrict(all), one_hot(&labels, columns, device))
                }
                _ if columns < stage.num_classes => model.loss(
                    restrict(logits.clone()),
                    one_hot(&batch.labels, columns, device),
                ),
                _ => model.loss(logits.clone(), y),
            };
            let ce = loss.clone().into_scalar::<f32>();
            let at = || format!("{}, epoch {}", stage.name, epoch + 1);
            check_finite(&at(), loss_so_far.batches, ce)?;
            let view = Step {
                images: &x,
                labels: &batch.labels,
                indices: &batch.indices,
                logits: &logits,
                extra_logits: extra_logits.as_ref(),
                stage,
            };
            if let Some(extra) = hooks.extra_loss(&model, &view)? {
                let value = extra.clone().into_scalar::<f32>();
                check_finite(
                    &format!("{} (method loss)", at()),
                    loss_so_far.batches,
                    value,
                )?;
                loss = loss + extra;
            }
            let grads = GradientsParams::from_grads(loss.backward(), &model);
            hooks.after_backward(&model, &grads);
            let step_lr = stage.optim.lr_at(step, total);
            model = optim.step(step_lr, model, grads);
            model = hooks.after_update(model, step_lr);
            hooks.after_step(&view);
            step += 1;
            loss_so_far.add(ce, progress);
            // Asked to leave (preemption): save after this batch and stop.
            if slot.is_some() && crate::resume::stop_requested() && b + 1 < per_epoch {
                let at = Reached {
                    epoch,
                    batch: b + 1,
                    epoch_loss: loss_so_far.sum,
                    epoch_lr: lr,
                    step,
                    stats,
                    finished: false,
                    curve: &curve,
                };
                save(&model, &optim, hooks, at)?;
                crate::resume::park();
            }
        }
        curve.extend(stats.end_epoch(stage, epoch, loss_so_far, (lr, started), progress));
        let control = hooks.after_epoch(epoch, &model)?;
        let done = control == EpochControl::Stop || epoch + 1 == stage.epochs;
        if let Some(slot) = &slot {
            let leave = crate::resume::stop_requested();
            if done || leave || (epoch + 1) % slot.every == 0 {
                let at = Reached {
                    epoch: epoch + 1,
                    batch: 0,
                    epoch_loss: 0.0,
                    epoch_lr: 0.0,
                    step,
                    stats,
                    finished: done,
                    curve: &curve,
                };
                save(&model, &optim, hooks, at)?;
            }
            if leave {
                crate::resume::park();
            }
        }
        if control == EpochControl::Stop {
            break;
        }
    }
    // A loss is checked before its update, so the last update of a stage
    // could leave non-finite weights unnoticed until evaluation.
    let sum: f32 = crate::params::snapshot(&model)
        .values()
        .map(|t| t.clone().abs().sum().into_scalar::<f32>())
        .sum();
    check_finite(
        &format!("{} (weights after the last update)", stage.name),
        stats.batches,
        sum,
    )?;
    Ok((model, stats))
}

/// Trains a linear head on fixed features (`[n, dim]`, row-major) — the
/// linear-probe stage, run on features computed once instead of passing
/// every image through the frozen backbone every epoch.
pub fn fit_linear(
    mut head: Linear,
    features: &[f32],
    labels: &[u32],
    dim: usize,
    stage: &Stage,
    device: &Device,
    progress: &dyn Progress,
) -> Result<(Linear, StageStats), CoreError> {
    let mut optim = stage.optim.optimizer();
    let n = labels.len();
    let bs = stage.batch_size.max(1);
    let per_epoch = n.div_ceil(bs);
    let total = per_epoch * stage.epochs;
    let mut step = 0;
    let mut stats = StageStats::default();
    let mut order: Vec<usize> = (0..n).collect();
    for epoch in 0..stage.epochs {
        order.shuffle(&mut ChaCha8Rng::seed_from_u64(epoch_seed(
            stage.seed, epoch,
        )));
        let (started, lr) = (Instant::now(), stage.optim.lr_at(step, total));
        progress.begin(
            &format!("{} · epoch {}/{}", stage.name, epoch + 1, stage.epochs),
            per_epoch,
        );
        let mut loss_so_far = EpochLoss::default();
        for chunk in order.chunks(bs) {
            let mut x = Vec::with_capacity(chunk.len() * dim);
            let mut y = Vec::with_capacity(chunk.len());
            for &i in chunk {
                x.extend_from_slice(&features[i * dim..(i + 1) * dim]);
                y.push(labels[i]);
            }
            let x = Tensor::<2>::from_data(TensorData::new(x, [chunk.len(), dim]), device);
            let loss =
                cross_entropy_with_logits(head.forward(x), one_hot(&y, stage.num_classes, device));
            let ce = loss.clone().into_scalar::<f32>();
            check_finite(&stage.name, loss_so_far.batches, ce)?;
            let grads = GradientsParams::from_grads(loss.backward(), &head);
            head = optim.step(stage.optim.lr_at(step, total), head, grads);
            step += 1;
            loss_so_far.add(ce, progress);
        }
        stats.end_epoch(stage, epoch, loss_so_far, (lr, started), progress);
    }
    Ok((head, stats))
}

/// The trainable copy of a module trained elsewhere: moves it to `device`
/// with a fresh autodiff graph.
pub fn trainable<M: Module>(module: M, device: &Device) -> M {
    module.fork(device)
}
