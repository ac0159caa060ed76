//! The debias methods. Each tunes the pretrained classifier on the k
//! counterexamples from the same frozen start: batch norm stays in
//! evaluation mode for every method (a batch of one image must not rewrite
//! the running statistics), and the paper's early stopping applies to all
//! of them ([`TuneContext`]).
//!
//! Adding a method: a file here with a config implementing [`Method`] and
//! [`DebiasMethodSpec`], and one line in [`DebiasMethod`].

use std::sync::Arc;

use burn::module::Module;
use burn::tensor::{Device, Tensor, TensorData};
use reusebench_core::CoreError;
use reusebench_core::method::Method;
use reusebench_core::model::{Classifier, TrainModel};
use reusebench_core::progress::Progress;
use reusebench_core::train::{EpochControl, OptimConfig, Stage, Step, TrainHooks, fit};
use reusebench_data::{Augment, ImageSet, Normalization};

/// What every method tunes with.
#[derive(Clone, Copy)]
pub struct TuneContext<'a> {
    /// The k counterexamples (normalised on the fly by the loop).
    pub tuning: &'a Arc<ImageSet>,
    /// The biased pretraining images (MAS's importance is estimated there).
    pub pretraining: &'a Arc<ImageSet>,
    pub classes: usize,
    pub normalization: Normalization,
    pub max_steps: usize,
    /// The paper's early stopping: stop once every tuning image is
    /// classified correctly, after at least `min_steps` steps (0: a model
    /// that already gets every counterexample right is not tuned at all).
    pub early_stopping: bool,
    pub min_steps: usize,
    pub seed: u64,
    pub device: &'a Device,
    pub progress: &'a dyn Progress,
}

/// The tuned model (as a classifier to evaluate) and the steps it took.
pub struct Tuned {
    pub model: Classifier,
    pub steps: usize,
    pub stopped_early: bool,
}

impl From<(Classifier, usize, bool)> for Tuned {
    fn from((model, steps, stopped_early): (Classifier, usize, bool)) -> Self {
        Self {
            model,
            steps,
            stopped_early,
        }
    }
}

/// What debias asks of a method: tune the pretrained classifier on the
/// counterexamples.
pub trait DebiasMethodSpec: Method {
    fn tune(&self, start: &Classifier, ctx: &TuneContext) -> Result<Tuned, CoreError>;
}

reusebench_core::register_methods! {
    /// Every debias method, by the name grids give it: one line each.
    pub enum DebiasMethod: dyn DebiasMethodSpec {
        ChangePenalty = "change-penalty" in change_penalty,
        Finetune = "finetune" in finetune,
        FinetunePlain = "finetune-plain" in finetune_plain,
        Mas = "mas" in mas,
        L2Sp = "l2-sp" in l2_sp,
        SideTuning = "side-tuning" in side_tuning,
        DropoutFt = "dropout-ft" in dropout_ft,
    }
}

/// The tuning images as one normalised batch on `device`.
pub fn tuning_batch(set: &ImageSet, normalization: Normalization, device: &Device) -> Tensor<4> {
    let (c, h, w) = (set.channels, set.height, set.width);
    let plane = h * w;
    let values: Vec<f32> = set
        .pixels
        .iter()
        .enumerate()
        .map(|(i, &p)| {
            let ch = (i / plane) % c;
            (p as f32 / 255.0 - normalization.mean[ch]) / normalization.std[ch]
        })
        .collect();
    Tensor::from_data(TensorData::new(values, [set.len(), c, h, w]), device)
}

/// Whether `logits` classify every row as `labels` says.
pub fn all_correct(logits: Tensor<2>, labels: &[u32]) -> bool {
    let predicted = logits
        .argmax(1)
        .into_data()
        .convert::<i64>()
        .try_into_vec::<i64>()
        .expect("argmax gives integers");
    predicted.iter().zip(labels).all(|(&p, &y)| p == y as i64)
}

/// A method's extra loss on the model being tuned (a penalty), if any.
pub type Penalty<'a, M> = Box<dyn FnMut(&M) -> Option<Tensor<1>> + 'a>;

/// A method's change to the model after each optimizer step (a proximal
/// step), given the step's learning rate.
pub type Update<'a, M> = Box<dyn FnMut(M, f64) -> M + 'a>;

/// The early-stopping rule and a method's extra loss, as loop hooks.
pub struct TuneHooks<'a, M> {
    pub penalty: Penalty<'a, M>,
    pub update: Option<Update<'a, M>>,
    /// Whether the model classifies every tuning image correctly.
    pub solved: Box<dyn Fn(&M) -> bool + 'a>,
    pub early_stopping: bool,
    pub min_steps: usize,
    pub steps: usize,
    pub stopped_early: bool,
}

impl<M> TrainHooks<M> for TuneHooks<'_, M> {
    fn extra_loss(&mut self, model: &M, _step: &Step) -> Result<Option<Tensor<1>>, CoreError> {
        Ok((self.penalty)(model))
    }

    fn after_update(&mut self, model: M, lr: f64) -> M {
        match &mut self.update {
            Some(update) => update(model, lr),
            None => model,
        }
    }

    fn after_epoch(&mut self, epoch: usize, model: &M) -> Result<EpochControl, CoreError> {
        // One epoch over the k images is one step (they are one batch).
        self.steps = epoch + 1;
        if self.early_stopping && self.steps >= self.min_steps && (self.solved)(model) {
            self.stopped_early = true;
            return Ok(EpochControl::Stop);
        }
        Ok(EpochControl::Continue)
    }
}

/// Tunes `model` on the counterexamples, one full-batch step per epoch, up
/// to `max_steps`, with `penalty` added to the cross-entropy.
pub(crate) fn tune_with<'a, M: TrainModel>(
    model: M,
    optimizer: &OptimConfig,
    ctx: &TuneContext,
    (penalty, update): (Penalty<'a, M>, Option<Update<'a, M>>),
    solved: Box<dyn Fn(&M) -> bool + 'a>,
) -> Result<(M, usize, bool), CoreError> {
    // With no minimum, a model that already solves the batch is done.
    if ctx.early_stopping && ctx.min_steps == 0 && solved(&model) {
        return Ok((model, 0, true));
    }
    let stage = Stage {
        name: "tune".into(),
        epochs: ctx.max_steps,
        batch_size: ctx.tuning.len(),
        optim: optimizer,
        augment: Augment::NONE,
        normalization: ctx.normalization,
        num_classes: ctx.classes,
        seed: ctx.seed,
        curve: None,
    };
    let mut hooks = TuneHooks {
        penalty,
        update,
        solved,
        early_stopping: ctx.early_stopping,
        min_steps: ctx.min_steps,
        steps: 0,
        stopped_early: false,
    };
    let (model, _) = fit(
        model,
        ctx.tuning,
        &stage,
        &mut hooks,
        ctx.device,
        ctx.progress,
    )?;
    Ok((model, hooks.steps, hooks.stopped_early))
}

/// [`tune_with`] for a classifier, stopping early on [`classifier_solves`].
pub(crate) fn tune_classifier<'a>(
    model: Classifier,
    optimizer: &OptimConfig,
    ctx: &'a TuneContext<'a>,
    penalty: Penalty<'a, Classifier>,
) -> Result<Tuned, CoreError> {
    tune_with(
        model,
        optimizer,
        ctx,
        (penalty, None),
        classifier_solves(ctx),
    )
    .map(Tuned::from)
}

/// [`tune_classifier`] with `update` applied after every optimizer step.
pub(crate) fn tune_classifier_updated<'a>(
    model: Classifier,
    optimizer: &OptimConfig,
    ctx: &'a TuneContext<'a>,
    update: Update<'a, Classifier>,
) -> Result<Tuned, CoreError> {
    let none: Penalty<'a, Classifier> = Box::new(|_| None);
    tune_with(
        model,
        optimizer,
        ctx,
        (none, Some(update)),
        classifier_solves(ctx),
    )
    .map(Tuned::from)
}

/// The whole-batch check for a classifier.
pub(crate) fn classifier_solves<'a>(
    ctx: &'a TuneContext<'a>,
) -> Box<dyn Fn(&Classifier) -> bool + 'a> {
    let x = tuning_batch(ctx.tuning, ctx.normalization, ctx.device);
    let labels = ctx.tuning.labels.clone();
    Box::new(move |m: &Classifier| all_correct(m.forward(x.clone()), &labels))
}

/// `start` with every parameter trainable and batch norm in evaluation
/// mode.
pub(crate) fn trainable_frozen_bn(start: &Classifier) -> Classifier {
    start.clone().freeze().set_require_grad(true)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::Cell;

    /// A toy "model": the step counter it has reached; solved from step 3.
    fn run(early_stopping: bool, min_steps: usize, max_steps: usize) -> (usize, bool) {
        let step = Cell::new(0usize);
        let mut hooks: TuneHooks<'_, ()> = TuneHooks {
            penalty: Box::new(|_| None),
            update: None,
            solved: Box::new(|_| step.get() >= 3),
            early_stopping,
            min_steps,
            steps: 0,
            stopped_early: false,
        };
        for epoch in 0..max_steps {
            step.set(epoch + 1);
            if hooks.after_epoch(epoch, &()).unwrap() == EpochControl::Stop {
                break;
            }
        }
        (hooks.steps, hooks.stopped_early)
    }

    #[test]
    fn early_stopping_stops_at_the_right_step() {
        // Solved from step 3: stop there when the minimum allows it...
        assert_eq!(run(true, 1, 20), (3, true));
        // ...at the minimum when it is later...
        assert_eq!(run(true, 5, 20), (5, true));
        // ...never when switched off, or when the cap comes first.
        assert_eq!(run(false, 1, 20), (20, false));
        assert_eq!(run(true, 1, 2), (2, false));
    }
}
