//! Penalties on change and the importance estimates behind them, shared by
//! every protocol that limits how far a pretrained model moves (continual
//! methods, bias removal): one MAS, one Fisher, one L2-SP.
//!
//! Parameters are tracked by burn's `ParamId`, which survives optimizer
//! steps and clones; values are kept flattened on the plain (non-autodiff)
//! device.

mod change;
mod distill;
mod importance;

use burn::module::{Module, ModuleVisitor, Param, ParamId};
use burn::tensor::Tensor;

pub use change::{Change, ChangeNorm, bases, change_penalty, changes, prox_change, with_change};
pub use distill::distillation_loss;
pub use importance::{ImportanceKind, importance};

use crate::params::flat;
pub use crate::params::{ParamTable, snapshot};

struct Quadratic<'a> {
    anchor: &'a ParamTable,
    weights: Option<&'a ParamTable>,
    sum: Option<Tensor<1>>,
}

impl ModuleVisitor for Quadratic<'_> {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
        let Some(anchor) = self.anchor.get(&param.id) else {
            return;
        };
        let value = flat(param.val());
        let diff = value - anchor.clone().autodiff();
        let mut sq = diff.clone() * diff;
        if let Some(w) = self.weights.and_then(|w| w.get(&param.id)) {
            sq = sq * w.clone().autodiff();
        }
        let term = sq.sum();
        self.sum = Some(match self.sum.take() {
            Some(s) => s + term,
            None => term,
        });
    }
}

/// `Σ_k w_k (θ_k − θ*_k)²` over the parameters of `module` that `anchor`
/// holds (`w_k = 1` without weights); `None` when none of them is in `module`.
pub fn quadratic_penalty<M: Module>(
    module: &M,
    anchor: &ParamTable,
    weights: Option<&ParamTable>,
) -> Option<Tensor<1>> {
    let mut v = Quadratic {
        anchor,
        weights,
        sum: None,
    };
    module.visit(&mut v);
    v.sum
}

/// `a ← decay · a + b` entry by entry (entries only in `b` are copied).
pub fn accumulate(acc: &mut ParamTable, new: ParamTable, decay: f64) {
    for (id, t) in new {
        let merged = match acc.remove(&id) {
            Some(old) => old * decay + t,
            None => t,
        };
        acc.insert(id, merged);
    }
}

/// Host copies of a table's values, for tests and reports.
pub fn table_values(table: &ParamTable, id: &ParamId) -> Option<Vec<f32>> {
    table.get(id).map(|t| {
        t.clone()
            .into_data()
            .try_into_vec::<f32>()
            .expect("f32 table")
    })
}

/// `scale · Σ_k w_k (θ_k − θ*_k)²` added to every batch: MAS, EWC and
/// L2-SP are this hook with different anchors, weights and scales.
pub struct QuadraticPenalty<'a> {
    pub anchor: &'a ParamTable,
    pub weights: Option<&'a ParamTable>,
    pub scale: f64,
}

impl<M: Module> crate::train::TrainHooks<M> for QuadraticPenalty<'_> {
    fn extra_loss(
        &mut self,
        model: &M,
        _step: &crate::train::Step,
    ) -> Result<Option<Tensor<1>>, crate::error::CoreError> {
        Ok(quadratic_penalty(model, self.anchor, self.weights).map(|p| p * self.scale))
    }
}
