//! The results schema shared by the protocols, the runner and the report.
//!
//! A protocol returns [`MetricRow`]s: a metric name, a value and the
//! coordinates that place it (`after_task`, `task`, `epoch`, `round`, `k`,
//! `angle`, `level`, `region`, ...). The runner stores them as
//! [`StoredRow`]s, adding the cell's identity and its grid axes, and writes
//! a [`CellStatus`] per cell. This crate depends on serde alone, so that the
//! report reads results without linking the training crates.

mod coords;
pub mod names;
mod row;
mod status;
pub mod tuning;

pub use coords::{Coord, Coords};
pub use row::{MetricRow, StoredRow, TEST_SPLIT};
pub use status::{CellStatus, State};

/// Version of the stored files (`rows.json`, `status.json`). Folders
/// written before versions were recorded load as version 1.
pub const SCHEMA_VERSION: u32 = 2;
