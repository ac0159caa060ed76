//! Reading and making flex tensors as plain `f32` buffers, for the kernels.

use burn::backend::flex::FlexTensor;
use burn::tensor::{DType, Shape, TensorData};

/// `t` as a dense `f32` buffer starting at element 0 of its storage (copied
/// only if it is not one), so kernels can index `storage::<f32>()` directly.
pub(crate) fn dense_f32(t: FlexTensor, op: &str) -> FlexTensor {
    assert_eq!(t.dtype(), DType::F32, "{op}: only f32 is supported");
    if t.is_contiguous() && t.layout().start_offset() == 0 {
        t
    } else {
        t.to_contiguous()
    }
}

/// A flex tensor owning `data`, laid out row-major in `shape`.
pub(crate) fn f32_tensor(data: Vec<f32>, shape: impl Into<Shape>) -> FlexTensor {
    FlexTensor::from_data(TensorData::new(data, shape))
}
