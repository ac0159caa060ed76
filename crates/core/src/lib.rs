//! The shared core of reusebench: backbones, heads, training, methods,
//! metrics and the protocols built from them.
//!
//! Layout: `backbone/` (architectures), `methods/` (one file per continual
//! method, registered in `methods/mod.rs`), `metrics/` (accuracy matrices,
//! kNN), `protocols/` (pretrain, continual), `train.rs` (the loop every
//! method shares), `features.rs` (frozen-feature extraction).

pub mod backbone;
pub mod checkpoint;
pub mod device;
pub mod error;
pub mod feature_cache;
pub mod features;
pub mod init;
pub mod methods;
pub mod metrics;
pub mod model;
pub mod penalties;
pub mod progress;
pub mod protocols;
pub mod throughput;
pub mod train;

pub use device::DeviceSpec;
pub use error::CoreError;
pub use metrics::MetricRow;
pub use progress::{NoProgress, Progress};
