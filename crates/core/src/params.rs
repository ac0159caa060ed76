//! Detached copies of a module's trainable parameters, keyed by burn's
//! `ParamId` (which survives optimizer steps and clones): what penalties
//! anchor to and what the training loop checks after its last update.

use std::collections::HashMap;

use burn::module::{Module, ModuleVisitor, Param, ParamId};
use burn::tensor::Tensor;

/// One flattened tensor per trainable parameter.
pub type ParamTable = HashMap<ParamId, Tensor<1>>;

pub(crate) fn flat<const D: usize>(t: Tensor<D>) -> Tensor<1> {
    let n = t.shape().num_elements();
    t.reshape([n])
}

struct Snapshot {
    table: ParamTable,
}

impl ModuleVisitor for Snapshot {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
        let value = param.val();
        // Trainable parameters only: batch-norm running statistics and
        // frozen parts have no gradient and nothing to penalise.
        if value.is_require_grad() {
            self.table.insert(param.id, flat(value.detach().inner()));
        }
    }
}

/// The current values of `module`'s trainable parameters (detached copies).
pub fn snapshot<M: Module>(module: &M) -> ParamTable {
    let mut v = Snapshot {
        table: HashMap::new(),
    };
    module.visit(&mut v);
    v.table
}
