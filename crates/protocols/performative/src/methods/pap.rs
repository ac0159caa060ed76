//! `pap`, the paper's adapter (Demirel et al. 2024, "PaP"): an MLP
//! C → hidden → hidden → C (ReLU) maps the previous round's per-class
//! accuracy vector to the next round's class prior (softmax of its output),
//! and the deployed posteriors are Bayes-corrected with it.
//!
//! Trained online, as the authors' `main.py` does: after every round from
//! round 1 on, the pair (previous round's accuracy vector, this round's
//! observed training-sample class proportions) is stored, then one pass
//! (`epochs_per_round`) over all stored pairs in shuffled minibatches of
//! half the pairs, KL(observed ‖ predicted) loss, Adam at `lr`.
//!
//! Older pairs are down-weighted: after every update each stored pair's
//! weight is multiplied by `decay`; a new pair starts at 1, and the loss is
//! the weighted mean. (The authors' code multiplies coefficients indexed by
//! a row's position in the minibatch, which under shuffling scales the loss
//! of every row alike — close to a no-op under Adam; this follows the
//! stated intent.) Round 0 has no accuracy vector yet: it predicts the
//! source prior (no correction).

use reusebench_core::{Purpose, Seeds};
use reusebench_core::method::Method;
use burn::module::Module;
use burn::nn::Linear;
use burn::optim::{AdamConfig, GradientsParams, ModuleOptimizer};
use burn::tensor::activation::{log_softmax, relu, softmax};
use burn::tensor::{Device, Tensor, TensorData};
use rand::seq::SliceRandom;
use rand_chacha::ChaCha8Rng;
use reusebench_core::CoreError;
use crate::label_shift::bayes_correct;
use reusebench_core::model::linear_head;
use reusebench_core::bounded::{Positive, PositiveInt, Share};
use serde::{Deserialize, Serialize};

use super::{Built, Predicted, Adapter, Deployed, Feedback, MethodSpec, Prediction, RoundInput};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Pap {
    pub hidden: PositiveInt,
    /// Adam's learning rate.
    pub lr: Positive,
    /// Weight factor applied to every stored pair after each update.
    pub decay: Share,
    /// Passes over the stored pairs after each round.
    pub epochs_per_round: usize,
}

/// What a grid leaves out: the authors' values.
impl Default for Pap {
    fn default() -> Self {
        Self {
            hidden: PositiveInt::of(256),
            lr: Positive::of(1e-4),
            decay: Share::of(0.995),
            epochs_per_round: 1,
        }
    }
}

/// The adapter network.
#[derive(Module, Debug)]
pub struct PriorNet {
    l1: Linear,
    l2: Linear,
    l3: Linear,
}

impl PriorNet {
    fn forward(&self, x: Tensor<2>) -> Tensor<2> {
        let h = relu(self.l1.forward(x));
        let h = relu(self.l2.forward(h));
        self.l3.forward(h)
    }
}

impl Method for Pap {}

impl MethodSpec for Pap {
    fn build(&self, deployed: &Deployed, seed: u64, device: &Device) -> Built {
        let mut rng = Seeds::new(seed).rng(Purpose::Pap);
        let k = deployed.classes;
        let net = PriorNet {
            l1: linear_head(&mut rng, k, self.hidden.get(), device),
            l2: linear_head(&mut rng, self.hidden.get(), self.hidden.get(), device),
            l3: linear_head(&mut rng, self.hidden.get(), k, device),
        };
        Ok(Box::new(PapState {
            config: self.clone(),
            net,
            optim: AdamConfig::new().init(),
            inputs: Vec::new(),
            targets: Vec::new(),
            weights: Vec::new(),
            rng,
            device: device.clone(),
        }))
    }
}

struct PapState {
    config: Pap,
    net: PriorNet,
    optim: ModuleOptimizer,
    inputs: Vec<Vec<f64>>,
    targets: Vec<Vec<f64>>,
    weights: Vec<f64>,
    rng: ChaCha8Rng,
    device: Device,
}

fn matrix(rows: &[&Vec<f64>], device: &Device) -> Tensor<2> {
    let cols = rows.first().map_or(0, |r| r.len());
    let v: Vec<f32> = rows
        .iter()
        .flat_map(|r| r.iter().map(|&x| x as f32))
        .collect();
    Tensor::from_data(TensorData::new(v, [rows.len(), cols]), device)
}

impl PapState {
    fn predict_prior(&self, acc: &[f64]) -> Vec<f64> {
        let net = self.net.valid();
        let device = self.device.clone().without_autodiff();
        let x = matrix(&[&acc.to_vec()], &device);
        let p = softmax(net.forward(x), 1);
        p.into_data()
            .try_into_vec::<f32>()
            .expect("f32 output")
            .into_iter()
            .map(f64::from)
            .collect()
    }

    fn train(&mut self) -> Result<(), CoreError> {
        let n = self.inputs.len();
        let batch = (n / 2).max(1);
        for _ in 0..self.config.epochs_per_round {
            let mut order: Vec<usize> = (0..n).collect();
            order.shuffle(&mut self.rng);
            for chunk in order.chunks(batch) {
                let x = matrix(
                    &chunk.iter().map(|&i| &self.inputs[i]).collect::<Vec<_>>(),
                    &self.device,
                );
                let y = matrix(
                    &chunk.iter().map(|&i| &self.targets[i]).collect::<Vec<_>>(),
                    &self.device,
                );
                let w: Vec<f32> = chunk.iter().map(|&i| self.weights[i] as f32).collect();
                let total: f32 = w.iter().sum();
                let w = Tensor::<2>::from_data(TensorData::new(w, [chunk.len(), 1]), &self.device);
                // KL(y ‖ q) = Σ y ln y − Σ y ln q; the first term has no
                // gradient, so the loss is the weighted soft cross-entropy.
                let log_q = log_softmax(self.net.forward(x), 1);
                let per_row = (y * log_q).sum_dim(1).neg();
                let loss = (per_row * w).sum().div_scalar(total);
                let value = loss.clone().into_scalar::<f32>();
                if !value.is_finite() {
                    return Err(CoreError::NonFinite {
                        stage: "pap adapter".into(),
                        batch: self.inputs.len(),
                        value,
                    });
                }
                let grads = GradientsParams::from_grads(loss.backward(), &self.net);
                self.net = self.optim.step(self.config.lr.get(), self.net.clone(), grads);
                self.weights
                    .iter_mut()
                    .for_each(|v| *v *= self.config.decay.get());
            }
        }
        Ok(())
    }
}

impl Adapter for PapState {
    fn predict(&mut self, input: &RoundInput, deployed: &Deployed) -> Predicted {
        let prior = match input.previous_acc {
            Some(acc) => self.predict_prior(acc),
            None => deployed.source_prior.clone(),
        };
        Ok(Prediction {
            probs: bayes_correct(
                &deployed.probs_of(input.test),
                deployed.classes,
                &deployed.source_prior,
                &prior,
            ),
            prior: Some(prior),
        })
    }

    fn observe(&mut self, feedback: &Feedback, _: &Deployed) -> Result<(), CoreError> {
        let Some(acc) = feedback.previous_acc else {
            return Ok(());
        };
        self.inputs.push(acc.to_vec());
        self.targets.push(feedback.train_prior.to_vec());
        self.weights.push(1.0);
        self.train()
    }
}
