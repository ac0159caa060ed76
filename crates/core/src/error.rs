use std::path::PathBuf;

/// Errors of the training core.
#[derive(Debug, thiserror::Error)]
pub enum CoreError {
    #[error("device `{0}`: {1}")]
    Device(String, String),
    #[error("checkpoint {path}: {message}")]
    Checkpoint { path: PathBuf, message: String },
    #[error("non-finite loss ({value}) at {stage}, batch {batch}: training diverged")]
    NonFinite {
        stage: String,
        batch: usize,
        value: f32,
    },
    #[error("invalid configuration: {0}")]
    Config(String),
    #[error(transparent)]
    Data(#[from] reusebench_data::DataError),
}
