use std::path::PathBuf;

/// Everything that can go wrong while reading or preparing data.
#[derive(Debug, thiserror::Error)]
pub enum DataError {
    #[error("cannot read {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "{path}: size {size} bytes is not a whole number of {record}-byte records \
         (expected a multiple of {record}; the file looks truncated)"
    )]
    Truncated {
        path: PathBuf,
        size: u64,
        record: usize,
    },
    #[error("{path}: {message}")]
    Format { path: PathBuf, message: String },
    #[error("dataset folder {root} not found (expected {expected})")]
    MissingRoot { root: PathBuf, expected: String },
    #[error("invalid data configuration: {0}")]
    Config(String),
}

impl DataError {
    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Self::Io {
            path: path.into(),
            source,
        }
    }
}
