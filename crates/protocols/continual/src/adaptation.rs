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

use reusebench_data::{Augment, ImageSet};
use serde::{Deserialize, Serialize};

use crate::methods::TaskContext;
use reusebench_core::CoreError;
use reusebench_core::bounded::PositiveInt;
use reusebench_core::features::{ModelKey, cached_features_keyed, features, head_logits};
use reusebench_core::metrics::{Coords, accuracy};
use reusebench_core::model::{Classifier, linear_head};
use reusebench_core::train::{CurveSink, NoHooks, OptimConfig, Stage, fit, fit_linear};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AdaptationConfig {
    /// Linear-probe epochs (on features computed once).
    pub epochs: PositiveInt,
    pub optimizer: OptimConfig,
    /// Fine-tune a copy of the whole model instead of probing.
    #[serde(default)]
    pub fine_tune: bool,
    /// Adapt on this many training images per class (the first ones of
    /// each class): the paper adapts "on a small amount of data from each
    /// task". Every training image when absent.
    #[serde(default)]
    pub samples_per_class: Option<PositiveInt>,
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
    let stage = Stage {
        name: format!("adaptation · {label}"),
        epochs: config.epochs.get(),
        batch_size: ctx.batch_size,
        optim: &config.optimizer,
        augment: if config.fine_tune {
            ctx.augment
        } else {
            Augment::NONE
        },
        normalization: ctx.normalization,
        num_classes: ctx.num_classes,
        seed: ctx.seed,
        curve: Some(CurveSink {
            log: ctx.curves,
            coords,
        }),
    };
    let test_features = if config.fine_tune {
        let mut copy = model.clone();
        copy.head = head;
        let (tuned, _) = fit(
            copy,
            &ctx.train,
            &stage,
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
        head_logits(&tuned.head, &feats, ctx.device)
    } else {
        let train = cached_features_keyed(
            ctx.features,
            model,
            key,
            &ctx.train,
            ctx.eval_batch_size,
            ctx.normalization,
            ctx.device,
        );
        let (head, _) = fit_linear(
            head,
            &train.values,
            &ctx.train.labels,
            train.dim,
            &stage,
            ctx.device,
            ctx.progress,
        )?;
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
    };
    Ok(accuracy(
        &test_features.values,
        test_features.dim,
        &test.labels,
    ))
}
