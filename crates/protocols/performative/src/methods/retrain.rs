//! `retrain-head`: the head is fine-tuned on each round's labelled training
//! sample (features of the frozen backbone, computed once per pool image),
//! starting from the head of the round before; the next round is predicted
//! with the fine-tuned head. Not the authors' baseline: theirs fine-tunes
//! the whole classifier (`finetune`, which builds this adapter with the
//! backbone on).

use reusebench_core::{Purpose, Seeds};
use reusebench_core::method::Method;
use burn::nn::Linear;
use burn::tensor::Device;
use std::sync::Arc;

use reusebench_core::features::{Rows, head_logits, logits};
use crate::label_shift::softmax_rows;
use reusebench_core::model::Classifier;
use reusebench_core::train::{
    CurveLog, CurveSink, NoHooks, OptimConfig, Stage, fit, fit_linear, trainable,
};
use reusebench_core::{CoreError, NoProgress};
use reusebench_data::{Augment, Normalization};
use reusebench_core::bounded::PositiveInt;
use serde::{Deserialize, Serialize};

use super::{Built, Predicted, Adapter, Deployed, Feedback, MethodSpec, Prediction, RoundInput};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RetrainHead {
    /// Epochs over each round's training sample.
    #[serde(default = "default_epochs")]
    pub epochs: PositiveInt,
    #[serde(default = "default_batch_size")]
    pub batch_size: PositiveInt,
    pub optimizer: OptimConfig,
    /// Fine-tune the backbone too, on the images (set by `finetune`, not
    /// by grids).
    #[serde(skip)]
    pub backbone: bool,
}

// Shared with `finetune`, whose defaults are the same.
pub(super) fn default_epochs() -> PositiveInt {
    PositiveInt::of(1)
}
pub(super) fn default_batch_size() -> PositiveInt {
    PositiveInt::of(32)
}

impl Method for RetrainHead {}

impl MethodSpec for RetrainHead {
    fn build(&self, deployed: &Deployed, seed: u64, device: &Device) -> Built {
        let whole = if self.backbone {
            let source = deployed.source.as_ref().ok_or_else(|| {
                CoreError::config(
                    "method",
                    "fine-tuning the backbone needs the pool's images (a protocol run, not outputs alone)",
                )
            })?;
            // Its curve is not among the cell's rows (as before
            // checkpoints): the log only carries the checkpoints.
            let curves = CurveLog::default();
            if let Some(c) = &source.checkpoints {
                curves.set_checkpoints(Arc::clone(c));
            }
            Some(Whole {
                model: trainable(source.classifier.clone(), device),
                curves,
            })
        } else {
            None
        };
        Ok(Box::new(RetrainState {
            config: self.clone(),
            head: trainable(deployed.head.clone(), device),
            whole,
            seed,
            device: device.clone(),
        }))
    }
}

struct RetrainState {
    config: RetrainHead,
    head: Linear,
    /// With the backbone on: the classifier being fine-tuned.
    whole: Option<Whole>,
    seed: u64,
    device: Device,
}

struct Whole {
    model: Classifier,
    /// Where each round's training checkpoints (see `reusebench_core::resume`).
    curves: CurveLog,
}

fn rows_of(features: &Rows, indices: &[usize]) -> Rows {
    Rows {
        values: indices
            .iter()
            .flat_map(|&i| features.row(i).iter().copied())
            .collect(),
        dim: features.dim,
    }
}

impl Adapter for RetrainState {
    fn predict(&mut self, input: &RoundInput, deployed: &Deployed) -> Predicted {
        if let (Some(whole), Some(source)) = (&self.whole, &deployed.source) {
            // The fine-tuned classifier on the round's test images.
            let set = Arc::new(source.pool.subset(input.test));
            let out = logits(
                &whole.model,
                &set,
                source.eval_batch_size,
                source.normalization,
                &self.device,
            );
            return Ok(Prediction {
                probs: softmax_rows(&out.values, out.dim),
                prior: None,
            });
        }
        let logits = head_logits(
            &self.head,
            &rows_of(&deployed.features, input.test),
            &self.device,
        );
        Ok(Prediction {
            probs: softmax_rows(&logits.values, logits.dim),
            prior: None,
        })
    }

    fn observe(&mut self, feedback: &Feedback, deployed: &Deployed) -> Result<(), CoreError> {
        if let (Some(whole), Some(source)) = (&mut self.whole, &deployed.source) {
            let set = source.pool.subset(feedback.train);
            let stage = Stage {
                name: format!("retrain round {}", feedback.round),
                epochs: self.config.epochs.get(),
                batch_size: self.config.batch_size.get().min(set.len()),
                optim: &self.config.optimizer,
                augment: Augment::NONE,
                normalization: source.normalization,
                num_classes: deployed.classes,
                seed: Seeds::new(self.seed).of(Purpose::RetrainRound {
                    round: feedback.round,
                }),
                curve: Some(CurveSink {
                    log: &whole.curves,
                    coords: Default::default(),
                }),
            };
            let (model, _) = fit(
                whole.model.clone(),
                &Arc::new(set),
                &stage,
                &mut NoHooks,
                &self.device,
                &NoProgress,
            )?;
            whole.model = model;
            return Ok(());
        }
        let features = rows_of(&deployed.features, feedback.train);
        let labels: Vec<u32> = feedback.train.iter().map(|&i| deployed.labels[i]).collect();
        let stage = Stage {
            name: format!("retrain round {}", feedback.round),
            epochs: self.config.epochs.get(),
            batch_size: self.config.batch_size.get(),
            optim: &self.config.optimizer,
            // Features are computed: no images, so no augmentation or
            // normalisation applies here.
            augment: Augment::NONE,
            normalization: Normalization::IMAGENET,
            num_classes: deployed.classes,
            seed: Seeds::new(self.seed).of(Purpose::RetrainRound {
                    round: feedback.round,
                }),
            curve: None,
        };
        let (head, _) = fit_linear(
            self.head.clone(),
            &features.values,
            &labels,
            features.dim,
            &stage,
            &self.device,
            &NoProgress,
        )?;
        self.head = head;
        Ok(())
    }
}
