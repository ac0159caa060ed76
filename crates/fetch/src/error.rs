use std::path::{Path, PathBuf};

/// What can go wrong while fetching or verifying a dataset.
#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{file}: {message}")]
    Manifest { file: PathBuf, message: String },
    #[error("no dataset `{name}` in the manifest (it has: {known})")]
    UnknownDataset { name: String, known: String },
    #[error("{url}: {message}")]
    Http { url: String, message: String },
    #[error(
        "{path}: SHA-256 {actual}, expected {expected} (moved aside to {kept}; the next fetch starts over)"
    )]
    Checksum {
        path: PathBuf,
        expected: String,
        actual: String,
        kept: PathBuf,
    },
    #[error("{path}: {actual} bytes, expected {expected}")]
    Size {
        path: PathBuf,
        expected: u64,
        actual: u64,
    },
    #[error("{path}: cannot unpack: {message}")]
    Extract { path: PathBuf, message: String },
}

impl FetchError {
    pub(crate) fn io(path: &Path, source: std::io::Error) -> Self {
        Self::Io {
            path: path.to_path_buf(),
            source,
        }
    }
}
