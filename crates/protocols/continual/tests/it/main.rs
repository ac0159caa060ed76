//! The integration tests of this crate, as one test binary (one link,
//! not one per file), with a module per area.

mod common;
mod der_loss;
mod er_loss;
mod head_columns;
mod replay_learns;
mod side_tuning_cached_base;
mod side_tuning_lifelong;
