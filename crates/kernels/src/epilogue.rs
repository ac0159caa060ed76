//! The one pass after an inference convolution whose batch norm was folded
//! into its weights: add the folded bias per channel, then the residual
//! and the ReLU where the block has them. burn's inference batch norm reads
//! and writes the activation four times (subtract, divide, multiply, add),
//! then once more for the ReLU and once for a residual sum; this is one pass,
//! in place when the convolution's output is not shared.

use burn::backend::autodiff::checkpoint::strategy::CheckpointStrategy;
use burn::backend::flex::FlexTensor;
use burn::backend::ops::{ActivationOps, FloatTensorOps};
use burn::backend::tensor::FloatTensor;
use burn::backend::{Autodiff, Backend, Flex, TensorMetadata, backend_extension};
use burn::tensor::{Shape, TensorData};
use rayon::prelude::*;

use crate::flex::dense_f32;

#[backend_extension(Flex, Autodiff)]
pub trait ConvEpilogue: Backend {
    /// `x + bias[c]` for `x` `[N, C, H, W]`, then ReLU if `relu`.
    fn bias_act(x: FloatTensor<Self>, bias: FloatTensor<Self>, relu: bool) -> FloatTensor<Self>;

    /// `relu(x + bias[c] + residual)`, the end of a residual block.
    fn bias_residual_relu(
        x: FloatTensor<Self>,
        bias: FloatTensor<Self>,
        residual: FloatTensor<Self>,
    ) -> FloatTensor<Self>;
}

fn apply(x: FlexTensor, bias: FlexTensor, residual: Option<FlexTensor>, relu: bool) -> FlexTensor {
    let mut x = dense_f32(x, "conv epilogue");
    let bias = dense_f32(bias, "conv epilogue");
    let residual = residual.map(|r| dense_f32(r, "conv epilogue"));
    let shape = x.layout().shape().clone();
    let c = shape[1];
    let hw = shape.num_elements() / (shape[0] * c).max(1);
    if x.try_storage_mut::<f32>().is_none() {
        // Shared with another tensor: write into a copy.
        x = FlexTensor::from_data(TensorData::new(x.storage::<f32>().to_vec(), shape.clone()));
    }
    let b = bias.storage::<f32>();
    let r = residual.as_ref().map(|r| {
        assert_eq!(r.layout().shape(), &shape, "conv epilogue: residual shape");
        r.storage::<f32>()
    });
    let out = x.storage_mut::<f32>();
    out.par_chunks_mut(hw).enumerate().for_each(|(plane, o)| {
        let bias = b[plane % c];
        match (r, relu) {
            (Some(r), _) => {
                for (v, &rv) in o.iter_mut().zip(&r[plane * hw..][..hw]) {
                    *v = (*v + bias + rv).max(0.0);
                }
            }
            (None, true) => o.iter_mut().for_each(|v| *v = (*v + bias).max(0.0)),
            (None, false) => o.iter_mut().for_each(|v| *v += bias),
        }
    });
    x
}

impl ConvEpilogue for Flex {
    fn bias_act(x: FloatTensor<Self>, bias: FloatTensor<Self>, relu: bool) -> FloatTensor<Self> {
        apply(x, bias, None, relu)
    }

    fn bias_residual_relu(
        x: FloatTensor<Self>,
        bias: FloatTensor<Self>,
        residual: FloatTensor<Self>,
    ) -> FloatTensor<Self> {
        apply(x, bias, Some(residual), true)
    }
}

/// Composed of tracked operations, so gradients stay right; the model
/// calls the fused path only without autodiff.
impl<C: CheckpointStrategy> ConvEpilogue for Autodiff<Flex, C> {
    fn bias_act(x: FloatTensor<Self>, bias: FloatTensor<Self>, relu: bool) -> FloatTensor<Self> {
        let c = x.shape()[1];
        let y = Self::float_add(x, Self::float_reshape(bias, Shape::new([1, c, 1, 1])));
        if relu { Self::relu(y) } else { y }
    }

    fn bias_residual_relu(
        x: FloatTensor<Self>,
        bias: FloatTensor<Self>,
        residual: FloatTensor<Self>,
    ) -> FloatTensor<Self> {
        let y = Self::bias_act(x, bias, false);
        Self::relu(Self::float_add(y, residual))
    }
}
