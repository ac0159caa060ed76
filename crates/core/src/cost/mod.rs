//! What retraining costs, measured while it runs: epochs until a target
//! accuracy, the global gradient L2 norm per epoch, the parameter change
//! ‖θ − θ₀‖₂/√n per layer and in total, wall time, energy and carbon.
//!
//! [`CostHooks`] is a [`TrainHooks`] any protocol passes to the shared
//! training loop; it evaluates after every epoch and stops the stage when
//! the target is reached. Energy comes from [`energy`] (RAPL or the CPU
//! model, recorded with the value).

pub mod energy;

use std::collections::BTreeMap;
use std::path::PathBuf;

use burn::module::{Module, ModuleVisitor, Param, ParamId};
use burn::optim::GradientsParams;
use burn::tensor::Tensor;
use serde::{Deserialize, Serialize};

use crate::error::CoreError;
use crate::train::{EpochControl, TrainHooks};
use energy::{EnergyChoice, EnergyMeter, EnergyReading, EnergySource, carbon_grams};

/// How a cell measures energy and carbon.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CostConfig {
    /// `auto` (RAPL where readable, else the CPU model) or `cpu-model`.
    #[serde(default)]
    pub energy: EnergyChoice,
    /// The CPU's thermal design power, for the model (watts).
    #[serde(default = "default_tdp")]
    pub tdp_watts: f64,
    /// Grid carbon intensity, grams of CO₂ per kWh.
    #[serde(default = "default_intensity")]
    pub grid_intensity: f64,
    /// Where RAPL's counters are.
    #[serde(default = "default_rapl_root")]
    pub rapl_root: PathBuf,
}

/// CodeCarbon's fallback TDP when it cannot tell the CPU (watts).
fn default_tdp() -> f64 {
    85.0
}

/// A world-average grid intensity (gCO₂/kWh, IEA 2023 order of magnitude);
/// set the local one in the grid.
fn default_intensity() -> f64 {
    475.0
}

fn default_rapl_root() -> PathBuf {
    PathBuf::from("/sys/class/powercap")
}

impl Default for CostConfig {
    fn default() -> Self {
        Self {
            energy: EnergyChoice::Auto,
            tdp_watts: default_tdp(),
            grid_intensity: default_intensity(),
            rapl_root: default_rapl_root(),
        }
    }
}

impl CostConfig {
    pub fn validate(&self, key: &str) -> Result<(), CoreError> {
        if !(self.tdp_watts.is_finite() && self.tdp_watts > 0.0) {
            return Err(CoreError::config(
                &format!("{key}.tdp_watts"),
                "must be > 0",
            ));
        }
        if !(self.grid_intensity.is_finite() && self.grid_intensity >= 0.0) {
            return Err(CoreError::config(
                &format!("{key}.grid_intensity"),
                "must be >= 0",
            ));
        }
        Ok(())
    }
}

/// The layer a parameter belongs to, from its module path: the first
/// backbone stage named on the path (`stem` for the first convolution and
/// its batch norm), otherwise the path's first module (`head`).
pub fn layer_of(path: &[String]) -> String {
    for (i, part) in path.iter().enumerate() {
        match part.as_str() {
            "layer1" | "layer2" | "layer3" | "layer4" => return part.clone(),
            "conv1" | "bn1" => return "stem".into(),
            // A ViT: its blocks, and the patch and position embeddings.
            "layers" if path.get(i + 1).is_some_and(|n| n.parse::<usize>().is_ok()) => {
                return crate::backbone::vit::block_name(path[i + 1].parse().expect("checked"));
            }
            "conv_proj" | "class_token" | "pos_embedding" => return "embedding".into(),
            _ => {}
        }
    }
    path.first().cloned().unwrap_or_else(|| "model".into())
}

/// Every trainable parameter with its layer.
struct Layers {
    stack: Vec<String>,
    out: Vec<(ParamId, String, Tensor<1>)>,
}

impl ModuleVisitor for Layers {
    fn enter_module(&mut self, name: &str, _container: &str) {
        self.stack.push(name.to_string());
    }
    fn exit_module(&mut self, _name: &str, _container: &str) {
        self.stack.pop();
    }
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
        let value = param.val();
        if value.is_require_grad() {
            let n = value.shape().num_elements();
            self.out.push((
                param.id,
                layer_of(&self.stack),
                value.detach().inner().reshape([n]),
            ));
        }
    }
}

fn trainable_by_layer<M: Module>(model: &M) -> Vec<(ParamId, String, Tensor<1>)> {
    let mut v = Layers {
        stack: Vec::new(),
        out: Vec::new(),
    };
    model.visit(&mut v);
    v.out
}

/// Σ‖g‖² over the model's parameters, on the device (one read per step).
struct GradSquares<'a> {
    grads: &'a GradientsParams,
    sum: Option<Tensor<1>>,
}

impl ModuleVisitor for GradSquares<'_> {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
        if let Some(g) = self.grads.get::<D>(param.id) {
            let s = g.powi_scalar(2).sum();
            self.sum = Some(match self.sum.take() {
                Some(acc) => acc + s,
                None => s,
            });
        }
    }
}

/// Measures a retraining run; see the module doc.
pub struct CostTracker {
    start: Vec<(ParamId, String, Tensor<1>)>,
    meter: EnergyMeter,
    grid_intensity: f64,
    step_norms: Vec<f64>,
    epoch_norms: Vec<f64>,
    /// What an earlier attempt of the run had spent when it checkpointed
    /// (a resumed run adds it to its own reading).
    carried: Spent,
}

/// Time and energy spent so far, as a checkpoint keeps them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
struct Spent {
    seconds: f64,
    cpu_seconds: f64,
    joules: f64,
    gpu_joules: Option<f64>,
}

/// A tracker's sums and what it has spent, as a checkpoint keeps them.
#[derive(Serialize, Deserialize)]
struct SavedTracker {
    step_norms: Vec<f64>,
    epoch_norms: Vec<f64>,
    spent: Spent,
    accuracy: Vec<f64>,
}

/// What a retraining run cost.
#[derive(Debug, Clone, PartialEq)]
pub struct CostReport {
    /// Mean over the epoch's steps of the global gradient L2 norm.
    pub grad_norm_per_epoch: Vec<f64>,
    /// ‖θ − θ₀‖₂ / √n over every trainable parameter.
    pub param_change: f64,
    /// ‖θ − θ₀‖₂ / ‖θ₀‖₂ over every trainable parameter: the change
    /// relative to where the weights started (readable where the RMS
    /// change per parameter rounds to 0.00).
    pub param_change_relative: f64,
    /// The same per layer (see [`layer_of`]), in the model's order.
    pub param_change_by_layer: Vec<(String, f64)>,
    pub seconds: f64,
    pub cpu_seconds: f64,
    pub joules: f64,
    /// The GPUs' part of `joules`, where NVML reads.
    pub gpu_joules: Option<f64>,
    pub energy_source: EnergySource,
    pub carbon_grams: f64,
}

impl CostTracker {
    /// Starts measuring from `model`'s current weights.
    pub fn start<M: Module>(model: &M, config: &CostConfig) -> Self {
        Self {
            start: trainable_by_layer(model),
            meter: EnergyMeter::start(config.energy, &config.rapl_root, config.tdp_watts),
            grid_intensity: config.grid_intensity,
            step_norms: Vec::new(),
            epoch_norms: Vec::new(),
            carried: Spent::default(),
        }
    }

    /// Time and energy so far, this attempt's and earlier ones'.
    fn spent(&self) -> Spent {
        self.spent_with(&self.meter.stop())
    }

    /// `reading` (this attempt's) with what earlier attempts spent.
    fn spent_with(&self, r: &EnergyReading) -> Spent {
        let c = self.carried;
        Spent {
            seconds: c.seconds + r.seconds,
            cpu_seconds: c.cpu_seconds + r.cpu_seconds,
            joules: c.joules + r.joules,
            gpu_joules: match (c.gpu_joules, r.gpu_joules) {
                (None, None) => None,
                (a, b) => Some(a.unwrap_or(0.0) + b.unwrap_or(0.0)),
            },
        }
    }

    pub fn record_gradients<M: Module>(&mut self, model: &M, grads: &GradientsParams) {
        let mut v = GradSquares { grads, sum: None };
        model.visit(&mut v);
        if let Some(sum) = v.sum {
            self.step_norms
                .push((sum.into_scalar::<f32>() as f64).sqrt());
        }
    }

    pub fn end_epoch(&mut self) {
        let n = self.step_norms.len().max(1) as f64;
        self.epoch_norms
            .push(self.step_norms.drain(..).sum::<f64>() / n);
    }

    pub fn finish<M: Module>(self, model: &M) -> CostReport {
        let reading = self.meter.stop();
        let spent = self.spent_with(&reading);
        let now: BTreeMap<ParamId, Tensor<1>> = trainable_by_layer(model)
            .into_iter()
            .map(|(id, _, t)| (id, t))
            .collect();
        // (layer, Σ squared change, n) in the model's order.
        let mut layers: Vec<(String, f64, usize)> = Vec::new();
        let mut start_sq = 0.0;
        for (id, layer, before) in &self.start {
            let Some(after) = now.get(id) else { continue };
            let n = before.shape().num_elements();
            start_sq += before.clone().powi_scalar(2).sum().into_scalar::<f32>() as f64;
            let sq = (after.clone() - before.clone())
                .powi_scalar(2)
                .sum()
                .into_scalar::<f32>() as f64;
            match layers.iter_mut().find(|(l, _, _)| l == layer) {
                Some(entry) => {
                    entry.1 += sq;
                    entry.2 += n;
                }
                None => layers.push((layer.clone(), sq, n)),
            }
        }
        let (sq, n) = layers
            .iter()
            .fold((0.0, 0usize), |(s, k), (_, sq, n)| (s + sq, k + n));
        CostReport {
            grad_norm_per_epoch: self.epoch_norms,
            param_change: (sq / n.max(1) as f64).sqrt(),
            param_change_relative: if start_sq > 0.0 {
                (sq / start_sq).sqrt()
            } else {
                0.0
            },
            param_change_by_layer: layers
                .into_iter()
                .map(|(l, sq, n)| (l, (sq / n.max(1) as f64).sqrt()))
                .collect(),
            seconds: spent.seconds,
            cpu_seconds: spent.cpu_seconds,
            joules: spent.joules,
            gpu_joules: spent.gpu_joules,
            energy_source: reading.source,
            carbon_grams: carbon_grams(spent.joules, self.grid_intensity),
        }
    }
}

/// The tracker as training hooks: records every step's gradient norm,
/// evaluates after every epoch and stops once `target` (%) is reached.
pub struct CostHooks<'a, M> {
    pub tracker: CostTracker,
    /// Accuracy (%) of the model as it stands.
    pub evaluate: &'a dyn Fn(&M) -> f64,
    pub target: Option<f64>,
    /// The accuracy after each epoch.
    pub accuracy: Vec<f64>,
}

impl<'a, M> CostHooks<'a, M> {
    pub fn new(tracker: CostTracker, evaluate: &'a dyn Fn(&M) -> f64, target: Option<f64>) -> Self {
        Self {
            tracker,
            evaluate,
            target,
            accuracy: Vec::new(),
        }
    }

    /// Whether the last evaluation reached the target.
    pub fn reached(&self) -> bool {
        match (self.target, self.accuracy.last()) {
            (Some(t), Some(&a)) => a >= t,
            _ => false,
        }
    }
}

impl<M: Module> TrainHooks<M> for CostHooks<'_, M> {
    fn after_backward(&mut self, model: &M, grads: &GradientsParams) {
        self.tracker.record_gradients(model, grads);
    }

    /// The gradient norms, the accuracies and the time and energy spent:
    /// a resumed run reports the whole run's cost.
    fn save_state(&self) -> Result<Vec<u8>, CoreError> {
        let saved = SavedTracker {
            step_norms: self.tracker.step_norms.clone(),
            epoch_norms: self.tracker.epoch_norms.clone(),
            spent: self.tracker.spent(),
            accuracy: self.accuracy.clone(),
        };
        Ok(serde_json::to_vec(&saved).expect("numbers serialise"))
    }

    fn restore_state(&mut self, state: &[u8]) -> Result<(), CoreError> {
        let saved: SavedTracker = serde_json::from_slice(state)
            .map_err(|e| CoreError::config("", format!("cost tracker in a checkpoint: {e}")))?;
        self.tracker.step_norms = saved.step_norms;
        self.tracker.epoch_norms = saved.epoch_norms;
        self.tracker.carried = saved.spent;
        self.accuracy = saved.accuracy;
        Ok(())
    }

    fn after_epoch(&mut self, _epoch: usize, model: &M) -> Result<EpochControl, CoreError> {
        self.tracker.end_epoch();
        self.accuracy.push((self.evaluate)(model));
        Ok(if self.reached() {
            EpochControl::Stop
        } else {
            EpochControl::Continue
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layers_by_module_path() {
        let p = |s: &str| s.split('.').map(String::from).collect::<Vec<_>>();
        assert_eq!(layer_of(&p("encoder.Backbone.layer3.1.conv2")), "layer3");
        assert_eq!(layer_of(&p("encoder.Backbone.conv1")), "stem");
        assert_eq!(layer_of(&p("encoder.Backbone.bn1")), "stem");
        let vit = "encoder.Backbone.Vit.encoder.layers.3.mlp.fc1.weight";
        assert_eq!(layer_of(&p(vit)), "block3");
        assert_eq!(
            layer_of(&p("encoder.Backbone.Vit.conv_proj.weight")),
            "embedding"
        );
        assert_eq!(layer_of(&p("head")), "head");
    }
}
