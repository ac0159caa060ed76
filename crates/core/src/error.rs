use std::path::PathBuf;

/// Errors of the training core and the protocols built on it.
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
    /// A configuration value that cannot work. `key` is its dotted path in
    /// the cell's config (`method.optimizer.lr`), so that the grid loader
    /// can name the file's line; empty where no one key is at fault.
    #[error("{}{message}", if key.is_empty() { String::new() } else { format!("`{key}` ") })]
    Config { key: String, message: String },
    #[error(transparent)]
    Data(#[from] reusebench_data::DataError),
}

impl CoreError {
    pub fn config(key: &str, message: impl Into<String>) -> Self {
        Self::Config {
            key: key.to_string(),
            message: message.into(),
        }
    }
}
