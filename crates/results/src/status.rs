//! A cell's status file (`cells/<cell>/status.json`), written last so that
//! a cell is done only with all its rows.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum State {
    Running,
    Done,
    Failed,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CellStatus {
    pub state: State,
    /// Why a failed cell failed, in one line (the error chain joined).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// The error chain, outermost first, each message once.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub errors: Vec<String>,
    pub experiment: String,
    pub protocol: String,
    pub method: String,
    /// What sets this cell apart from the others of its experiment
    /// (`der++ buffer_size=8 seed=1`).
    #[serde(default)]
    pub label: String,
    pub seed: u64,
    #[serde(default)]
    pub seconds: f64,
    pub device: String,
    #[serde(default = "schema_1")]
    pub schema: u32,
    /// The machine that ran the cell.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host: Option<String>,
    /// Its Slurm job (`ARRAYJOB_TASK` for an array task), under Slurm.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub slurm_job: Option<String>,
}

fn schema_1() -> u32 {
    1
}
