//! The shared core of reusebench: backbones, heads, training, methods,
//! metrics, and the [`Protocol`] trait the protocols (`crates/protocols/*`)
//! implement.
//!
//! Layout: `backbone/` (architectures), `methods/` (one file per continual
//! method, registered in `methods/mod.rs`), `metrics/` (accuracy matrices,
//! kNN), `protocol.rs` (the trait and the run environment), `train.rs` (the
//! loop every method shares), `features.rs` (frozen-feature extraction).

pub mod backbone;
pub mod checkpoint;
pub mod cost;
pub mod device;
pub mod error;
pub mod feature_cache;
pub mod features;
pub mod init;
pub mod label_shift;
pub mod methods;
pub mod metrics;
pub mod model;
pub mod penalties;
pub mod progress;
pub mod protocol;
pub mod throughput;
pub mod train;

pub use device::DeviceSpec;
pub use error::CoreError;
pub use metrics::MetricRow;
pub use progress::{NoProgress, PhaseTimes, Progress};
pub use protocol::{Checks, Protocol, RunEnv};
