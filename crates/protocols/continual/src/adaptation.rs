//! Fine-tuning adaptation evaluation (Sun et al. 2023, after the LP-FT
//! paper): after the whole sequence, how well does the final representation
//! adapt to each task again? For every task: a fresh head over the task's
//! own classes, trained on its training set from the final model — a linear
//! probe on cached features, or (with `fine_tune`) fine-tuning a copy of the
//! whole model — and its test accuracy. The same procedure from a randomly
//! initialised backbone of the same architecture (its batch-norm statistics
//! recomputed on the task's data) is the from-scratch reference;
//! `adapt_gain` = mean(adapted − from scratch). (This was called
//! `forward_transfer`; GEM's forward transfer is `fwt_*` now.)

use reusebench_core::{Purpose, Seeds};
use std::sync::Arc;

use reusebench_data::{Augment, DatasetSpec, ImageSet};
use serde::{Deserialize, Serialize};

use crate::methods::TaskContext;
use reusebench_core::CoreError;
use reusebench_core::bounded::PositiveInt;
use reusebench_core::features::{ModelKey, cached_features_keyed, features, head_logits};
use reusebench_core::metrics::{Coords, accuracy, names};
use reusebench_core::model::{Classifier, linear_head};
use reusebench_core::train::{CurveSink, NoHooks, OptimConfig, Stage, fit, fit_linear};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AdaptationConfig {
    /// Linear-probe epochs (on features computed once), or fine-tuning
    /// epochs with `mode: finetune`.
    pub epochs: PositiveInt,
    pub optimizer: OptimConfig,
    /// How the representation adapts: `linear-probe` (the default), `finetune`
    /// (a copy of the whole model), or `lp-ft` (the probe, then fine-tuning
    /// from its head for `ft_epochs` with `ft_optimizer`: Kumar et al.'s
    /// recipe, as Sun et al. adapt).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mode: Option<AdaptMode>,
    /// The same as `mode: finetune` (the key before `mode` existed).
    #[serde(default)]
    pub fine_tune: bool,
    /// `lp-ft`: fine-tuning epochs after the probe.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ft_epochs: Option<PositiveInt>,
    /// `lp-ft`: the fine-tuning optimizer (`optimizer` when absent).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ft_optimizer: Option<OptimConfig>,
    /// Adapt on this many training images per class (the first ones of
    /// each class; `shots` is the same key): the paper adapts "on a small
    /// amount of data from each task". Every training image when absent.
    /// A list (`shots: [5, 20, 100]`) adapts once per value after the same
    /// training, every adaptation row then carrying the coordinate `shots`.
    #[serde(default, alias = "shots")]
    pub samples_per_class: Option<Shots>,
    /// Adapt after every task, not only after the last: the current model
    /// to each task seen so far (rows `adapt_acc` at (after_task, task),
    /// and `adapt_forgetting`, the best adaptation accuracy a task ever had
    /// minus its final one, as Sun et al. read forgetting through
    /// adaptation), and to `downstream` if given.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub every_task: bool,
    /// A downstream task the sequence never trains on (other classes or
    /// another dataset), adapted to with the same mode and shots: rows
    /// `adapt_downstream_acc` (coordinate `after_task`) and its from-scratch
    /// reference.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub downstream: Option<Downstream>,
}

/// A downstream task: `classes` of `data`, renumbered 0..n in this order.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Downstream {
    // Boxed: a dataset spec is large.
    pub data: Box<DatasetSpec>,
    #[serde(default)]
    pub classes: Option<Vec<u32>>,
}

/// Shots per class: one value, or several adapted to one after another.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Shots {
    One(PositiveInt),
    Many(Vec<PositiveInt>),
}

/// How [`adapt`] adapts a representation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum AdaptMode {
    LinearProbe,
    Finetune,
    LpFt,
}

impl AdaptationConfig {
    /// The adaptations to run after the same training: this config alone,
    /// or one per value of a `shots` list, each with its value (the rows'
    /// `shots` coordinate).
    pub fn variants(&self) -> Vec<(Option<usize>, AdaptationConfig)> {
        match &self.samples_per_class {
            Some(Shots::Many(list)) => list
                .iter()
                .map(|&n| {
                    let mut one = self.clone();
                    one.samples_per_class = Some(Shots::One(n));
                    (Some(n.get()), one)
                })
                .collect(),
            _ => vec![(None, self.clone())],
        }
    }

    /// Training images per class to adapt on; every one when `None`.
    pub fn shots(&self) -> Option<usize> {
        match &self.samples_per_class {
            Some(Shots::One(n)) => Some(n.get()),
            Some(Shots::Many(_)) => unreachable!("run through variants()"),
            None => None,
        }
    }

    /// The mode, with `fine_tune: true` read as `finetune`.
    pub fn mode(&self) -> AdaptMode {
        match (self.mode, self.fine_tune) {
            (Some(m), _) => m,
            (None, true) => AdaptMode::Finetune,
            (None, false) => AdaptMode::LinearProbe,
        }
    }

    /// The grid's mistakes, by key: `fine_tune` with another `mode`, `lp-ft`
    /// without `ft_epochs`, `ft_*` keys without `lp-ft`.
    pub fn check(&self) -> Result<(), CoreError> {
        if self.fine_tune && self.mode.is_some_and(|m| m != AdaptMode::Finetune) {
            return Err(CoreError::config(
                "adaptation.fine_tune",
                "conflicts with `mode`: give `mode` alone",
            ));
        }
        if let Some(Shots::Many(list)) = &self.samples_per_class {
            let mut sorted: Vec<usize> = list.iter().map(|n| n.get()).collect();
            sorted.sort_unstable();
            sorted.dedup();
            if list.is_empty() || sorted.len() != list.len() {
                return Err(CoreError::config(
                    "adaptation.shots",
                    "a list of shots must hold distinct values",
                ));
            }
        }
        let lp_ft = self.mode() == AdaptMode::LpFt;
        if lp_ft && self.ft_epochs.is_none() {
            return Err(CoreError::config(
                "adaptation.ft_epochs",
                "`mode: lp-ft` fine-tunes after the probe: give ft_epochs",
            ));
        }
        if !lp_ft && (self.ft_epochs.is_some() || self.ft_optimizer.is_some()) {
            return Err(CoreError::config(
                "adaptation.ft_epochs",
                "ft_epochs and ft_optimizer belong to `mode: lp-ft`",
            ));
        }
        Ok(())
    }
}

/// One stage of an adaptation, recorded under `coords`. A few-shot set
/// smaller than `batch_size` (5 shots of 2 classes against 32) is one batch
/// of all its images: training drops a last partial batch, so the cell's
/// batch size would train no step at all.
fn adaptation_stage<'a>(
    name: String,
    epochs: usize,
    optim: &'a OptimConfig,
    augment: Augment,
    coords: &Coords,
    ctx: &'a TaskContext,
) -> Stage<'a> {
    Stage {
        name,
        epochs,
        // At least 2: batch norm needs two rows (a 1-image set stays an error).
        batch_size: ctx.batch_size.min(ctx.train.len().max(2)),
        optim,
        augment,
        normalization: ctx.normalization,
        num_classes: ctx.num_classes,
        seed: ctx.seed,
        curve: Some(CurveSink {
            log: ctx.curves,
            coords: coords.clone(),
        }),
    }
}

/// Test accuracy on `test` after adapting `model` to the task `ctx`
/// describes (its training set and class count, labels from 0).
/// `key` is `model`'s [`ModelKey`], computed once for all tasks.
pub fn adapt(
    config: &AdaptationConfig,
    model: &Classifier,
    key: &ModelKey,
    test: &Arc<ImageSet>,
    label: &str,
    coords: Coords,
    ctx: &TaskContext,
) -> Result<f64, CoreError> {
    let mut rng = Seeds::new(ctx.seed).rng(Purpose::Adaptation);
    let dim = model.head.weight.dims()[0];
    let head = linear_head(&mut rng, dim, ctx.num_classes, ctx.device);
    let mode = config.mode();
    // The probe: a head on features computed once (linear-probe, lp-ft).
    let probe = |head| -> Result<_, CoreError> {
        let train = cached_features_keyed(
            ctx.features,
            model,
            key,
            &ctx.train,
            ctx.eval_batch_size,
            ctx.normalization,
            ctx.device,
        );
        let probe_stage = adaptation_stage(
            format!("adaptation · {label}"),
            config.epochs.get(),
            &config.optimizer,
            Augment::NONE,
            &coords,
            ctx,
        );
        let (head, _) = fit_linear(
            head,
            &train.values,
            &ctx.train.labels,
            train.dim,
            &probe_stage,
            ctx.device,
            ctx.progress,
        )?;
        Ok(head)
    };
    // Fine-tuning a copy of the whole model from `head`.
    let fine_tune =
        |head, epochs: usize, optim: &OptimConfig, coords: &Coords| -> Result<_, CoreError> {
            let mut copy = model.clone();
            copy.head = head;
            let ft_stage = adaptation_stage(
                format!("adaptation (fine-tune) · {label}"),
                epochs,
                optim,
                ctx.augment,
                coords,
                ctx,
            );
            let (tuned, _) = fit(
                copy,
                &ctx.train,
                &ft_stage,
                &mut NoHooks,
                ctx.device,
                ctx.progress,
            )?;
            let feats = features(
                &tuned,
                test,
                ctx.eval_batch_size,
                ctx.normalization,
                ctx.device,
            );
            Ok(head_logits(&tuned.head, &feats, ctx.device))
        };
    let test_features = match mode {
        AdaptMode::Finetune => fine_tune(head, config.epochs.get(), &config.optimizer, &coords)?,
        AdaptMode::LpFt => {
            let probed = probe(head)?;
            let epochs = config
                .ft_epochs
                .expect("checked: lp-ft has ft_epochs")
                .get();
            let optim = config.ft_optimizer.as_ref().unwrap_or(&config.optimizer);
            // Its curve apart from the probe's (same epochs, same task).
            let ft_coords = coords.clone().with(names::STAGE, "adaptation-ft");
            fine_tune(probed, epochs, optim, &ft_coords)?
        }
        AdaptMode::LinearProbe => {
            let head = probe(head)?;
            let feats = cached_features_keyed(
                ctx.features,
                model,
                key,
                test,
                ctx.eval_batch_size,
                ctx.normalization,
                ctx.device,
            );
            head_logits(&head, &feats, ctx.device)
        }
    };
    Ok(accuracy(
        &test_features.values,
        test_features.dim,
        &test.labels,
    ))
}
