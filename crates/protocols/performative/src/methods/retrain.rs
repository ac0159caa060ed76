//! `retrain`: the expensive reference. The head is fine-tuned on each
//! round's labelled training sample (features of the frozen backbone,
//! computed once per pool image), starting from the head of the round
//! before; the next round is predicted with the fine-tuned head. The
//! backbone stays frozen (fine-tuning it each round is not built).

use burn::nn::Linear;
use burn::tensor::Device;
use reusebench_core::features::{Rows, head_logits};
use reusebench_core::label_shift::softmax_rows;
use reusebench_core::train::{OptimConfig, Stage, fit_linear, trainable};
use reusebench_core::{CoreError, NoProgress};
use reusebench_data::{Augment, Normalization};
use serde::{Deserialize, Serialize};

use super::{Adapter, Deployed, Feedback, MethodSpec, Prediction, RoundInput};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Retrain {
    /// Epochs over each round's training sample.
    #[serde(default = "default_epochs")]
    pub epochs: usize,
    #[serde(default = "default_batch_size")]
    pub batch_size: usize,
    pub optimizer: OptimConfig,
}

fn default_epochs() -> usize {
    1
}
fn default_batch_size() -> usize {
    32
}

impl MethodSpec for Retrain {
    fn validate(&self) -> Result<(), CoreError> {
        if self.epochs == 0 {
            return Err(CoreError::config("epochs", "must be >= 1"));
        }
        if self.batch_size == 0 {
            return Err(CoreError::config("batch_size", "must be >= 1"));
        }
        self.optimizer.validate("optimizer")
    }

    fn build(
        &self,
        deployed: &Deployed,
        seed: u64,
        device: &Device,
    ) -> Result<Box<dyn Adapter>, CoreError> {
        Ok(Box::new(RetrainState {
            config: self.clone(),
            head: trainable(deployed.head.clone(), device),
            seed,
            device: device.clone(),
        }))
    }
}

struct RetrainState {
    config: Retrain,
    head: Linear,
    seed: u64,
    device: Device,
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
    fn predict(
        &mut self,
        input: &RoundInput,
        deployed: &Deployed,
    ) -> Result<Prediction, CoreError> {
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
        let features = rows_of(&deployed.features, feedback.train);
        let labels: Vec<u32> = feedback.train.iter().map(|&i| deployed.labels[i]).collect();
        let stage = Stage {
            name: format!("retrain round {}", feedback.round),
            epochs: self.config.epochs,
            batch_size: self.config.batch_size,
            optim: &self.config.optimizer,
            // Features are computed: no images, so no augmentation or
            // normalisation applies here.
            augment: Augment::NONE,
            normalization: Normalization::IMAGENET,
            num_classes: deployed.classes,
            seed: self.seed.wrapping_add(feedback.round as u64),
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
