//! The integration tests of this crate, as one test binary (one link,
//! not one per file), with a module per area.

mod batch_norm;
mod bn_relu_training;
mod conv_bn_inference;
mod gemm_conv;
mod transformer;
