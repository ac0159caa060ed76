//! The integration tests of this crate, as one test binary (one link,
//! not one per file), with a module per area.

mod batch_norm_recompute;
mod change_penalty;
mod checkpoint;
mod conv_tap;
mod feature_cache;
mod penalties;
mod resume;
mod small_task;
mod torchvision_import;
mod vit_parity;
