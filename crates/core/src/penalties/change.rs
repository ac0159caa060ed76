//! Tuning while penalising change (Penzel et al., VISAPP 2024): the
//! pretrained parameters θ stay frozen, a zero-initialised θ′ of the same
//! shape is added to each of them (all, or those under given module
//! paths), the model computes with θ + θ′, and the loss adds λ‖θ′‖ (L1,
//! squared L2, or both).
//!
//! θ′ is burn's parameter reparameterization ([`Change`]), so it wraps any
//! module — every layer reads its weights through `Param::val`, which
//! applies it — and the optimizer sees only the θ′ tensors.

use burn::module::{
    Module, ModuleMapper, ModuleVisitor, Param, ParamId, Reparameterization, Reparameterizer,
};
use burn::tensor::Tensor;
use serde::{Deserialize, Serialize};

/// θ′ of one parameter, flattened (one type for every rank).
#[derive(Module, Debug)]
pub struct Change {
    pub delta: Param<Tensor<1>>,
}

impl Reparameterization for Change {
    const NAME: &'static str = "change";

    fn apply<const D: usize>(&self, base: Tensor<D>) -> Tensor<D> {
        let shape = base.shape();
        base + self.delta.val().reshape(shape)
    }
}

/// Attaches a zero [`Change`] to every float parameter whose module path
/// starts with one of `prefixes` (all when empty).
struct AddChange<'a> {
    prefixes: &'a [String],
}

impl Reparameterizer for AddChange<'_> {
    type Reparam = Change;

    fn reparameterize<const D: usize>(
        &mut self,
        path: &str,
        param: Param<Tensor<D>>,
    ) -> (Param<Tensor<D>>, Option<Change>) {
        let selected = self.prefixes.is_empty()
            || self
                .prefixes
                .iter()
                .any(|p| path == p || path.starts_with(&format!("{p}.")));
        if !selected {
            return (param, None);
        }
        let base = param.val();
        let n = base.shape().num_elements();
        let delta = Tensor::<1>::zeros([n], &base.device());
        (
            param,
            Some(Change {
                delta: Param::from_tensor(delta),
            }),
        )
    }
}

/// `model` frozen (batch norm in evaluation mode, no parameter trains) with
/// a zero θ′ on the parameters under `prefixes` (all when empty): the
/// outputs are unchanged until θ′ moves, and only θ′ trains.
pub fn with_change<M: Module>(model: M, prefixes: &[String]) -> M {
    model
        .freeze()
        .apply_reparameterization(AddChange { prefixes })
}

/// Which norm of θ′ the loss adds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ChangeNorm {
    /// Σ|θ′|
    L1,
    /// Σθ′²
    #[default]
    L2,
    /// Σ|θ′| + Σθ′²
    Both,
}

/// Splits a model's float parameters at its θ′: those inside a
/// reparameterization (the θ′ tensors, kept on the autodiff graph) and the
/// others (stored values; a visitor sees a reparameterized parameter's
/// base, never θ + θ′).
#[derive(Default)]
struct Split {
    /// Collect the outside too (not on the penalty's per-step path).
    with_outside: bool,
    depth: usize,
    inside: Vec<Tensor<1>>,
    outside: Vec<(ParamId, Tensor<1>)>,
}

impl ModuleVisitor for Split {
    fn enter_module(&mut self, _name: &str, container: &str) {
        self.depth += usize::from(container == "Reparameterization");
    }
    fn exit_module(&mut self, _name: &str, container: &str) {
        self.depth -= usize::from(container == "Reparameterization");
    }
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
        if self.depth == 0 && !self.with_outside {
            return;
        }
        let t = param.val();
        let n = t.shape().num_elements();
        if self.depth > 0 {
            self.inside.push(t.reshape([n]));
        } else {
            self.outside
                .push((param.id, t.detach().inner().reshape([n])));
        }
    }
}

fn split<M: Module>(model: &M, with_outside: bool) -> Split {
    let mut v = Split {
        with_outside,
        ..Split::default()
    };
    model.visit(&mut v);
    v
}

/// Every θ′ tensor of `model`, flattened.
pub fn changes<M: Module>(model: &M) -> Vec<Tensor<1>> {
    split(model, false).inside
}

/// Every other float parameter's stored value by id, flattened and
/// detached: with [`changes`], all a model holds.
pub fn bases<M: Module>(model: &M) -> Vec<(ParamId, Tensor<1>)> {
    split(model, true).outside
}

/// The penalty ‖θ′‖ of `norm` over every θ′ of `model` (not scaled by λ);
/// `None` when the model has no θ′.
pub fn change_penalty<M: Module>(model: &M, norm: ChangeNorm) -> Option<Tensor<1>> {
    changes(model)
        .into_iter()
        .map(|d| match norm {
            ChangeNorm::L1 => d.abs().sum(),
            ChangeNorm::L2 => d.powi_scalar(2).sum(),
            ChangeNorm::Both => d.clone().abs().sum() + d.powi_scalar(2).sum(),
        })
        .reduce(|a, b| a + b)
}

/// The proximal step of `weight`·‖θ′‖ (`norm`) with step size `lr`,
/// applied to every θ′ of `model`: the exact minimiser of the penalty plus
/// the distance to where the gradient step on the loss left θ′. L1
/// soft-thresholds (θ′ ← sign θ′ · max(|θ′| − lr·λ, 0)), squared L2
/// shrinks (θ′ ← θ′ / (1 + 2·lr·λ)), both does one then the other. Unlike a
/// gradient step on the penalty it never overshoots zero, so it is stable
/// for any λ: λ → ∞ leaves θ′ at zero (no change), λ → 0 is fine-tuning.
pub fn prox_change<M: Module>(model: M, norm: ChangeNorm, lr: f64, weight: f64) -> M {
    model.map(&mut Prox {
        depth: 0,
        norm,
        threshold: lr * weight,
    })
}

struct Prox {
    depth: usize,
    norm: ChangeNorm,
    /// lr·λ.
    threshold: f64,
}

impl ModuleMapper for Prox {
    fn enter_module(&mut self, _name: &str, container: &str) {
        self.depth += usize::from(container == "Reparameterization");
    }
    fn exit_module(&mut self, _name: &str, container: &str) {
        self.depth -= usize::from(container == "Reparameterization");
    }
    fn map_float<const D: usize>(&mut self, param: Param<Tensor<D>>) -> Param<Tensor<D>> {
        if self.depth == 0 {
            return param;
        }
        let (norm, t) = (self.norm, self.threshold);
        param.map(|delta| {
            let tracked = delta.is_require_grad();
            let mut d = delta.inner();
            if matches!(norm, ChangeNorm::L1 | ChangeNorm::Both) {
                // sign(d)·max(|d| − t, 0) = d − clamp(d, −t, t)
                d = d.clone() - d.clamp(-t, t);
            }
            if matches!(norm, ChangeNorm::L2 | ChangeNorm::Both) {
                d = d / (1.0 + 2.0 * t);
            }
            let d = d.autodiff();
            if tracked { d.require_grad() } else { d }
        })
    }
}
