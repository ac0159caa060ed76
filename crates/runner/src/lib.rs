//! Experiment grids: a YAML file names experiments (a protocol, a base
//! config and axes to sweep); the runner expands them into cells, validates
//! every cell before any training, runs the cells that are not done yet and
//! stores each cell's status and metric rows atomically. Protocols are
//! known through the [`Registry`] alone.

pub mod cell;
pub mod claim;
pub mod error;
pub mod execute;
pub mod grid;
pub mod identity;
pub mod live;
mod locate;
pub mod registry;
mod select;
pub mod slurm;
pub mod status;
pub mod store;
pub mod tensorboard;
pub mod tune;

pub use cell::Cell;
pub use error::RunnerError;
pub use execute::{
    GridObserver, RunOptions, RunSummary, Selection, error_chain, run_grid, selected,
};
pub use grid::{Grid, Places, load_grid, load_grid_with_data};
pub use registry::{CellConfig, ProtocolEntry, Registry};
pub use reusebench_results::{CellStatus, State, StoredRow};
