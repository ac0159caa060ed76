//! The shared core of reusebench: what two or more protocols use. Backbones,
//! heads, the training loop, penalties, checkpoints, the feature cache,
//! devices, shared metrics, and the [`Protocol`] trait the protocols
//! (`crates/protocols/*`) implement. A protocol's own methods, metrics and
//! config types live in its crate.
//!
//! Layout: `backbone/` (architectures), `metrics/` (accuracy matrices,
//! kNN), `penalties/` (quadratic, change, distillation), `protocol.rs` (the
//! trait and the run environment), `train.rs` (the loop every method
//! shares), `features.rs` (frozen-feature extraction), `feature_cache.rs`.

pub mod backbone;
pub mod checkpoint;
pub mod cost;
pub mod device;
pub mod error;
pub mod evaluator;
pub mod feature_cache;
pub mod features;
pub mod init;
pub mod method;
pub mod metrics;
pub mod model;
pub mod params;
pub mod penalties;
pub mod progress;
pub mod protocol;
pub mod resume;
pub mod rows;
pub mod shared;
pub mod testing;
pub mod throughput;
pub mod train;

pub use device::DeviceSpec;
pub use error::CoreError;
pub use evaluator::Evaluator;
pub use metrics::MetricRow;
pub use progress::{NoProgress, PhaseTimes, Progress};
pub use protocol::{Checks, HeldOut, Protocol, RunEnv};
pub use reusebench_bounded as bounded;
pub use reusebench_seeds::{Purpose, Seeds};
