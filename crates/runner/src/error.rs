use std::path::PathBuf;

/// Errors of grid parsing, validation and the results store.
#[derive(Debug, thiserror::Error)]
pub enum RunnerError {
    #[error("cannot read {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// A problem in the grid file, with where it is.
    #[error("{path}{}: {message}", line.map(|l| format!(":{l}")).unwrap_or_default())]
    Grid {
        path: PathBuf,
        line: Option<u64>,
        message: String,
    },
    /// Several problems found while validating; reported together.
    #[error("{} problem(s) in {path}:\n{}", problems.len(), problems.join("\n"))]
    Invalid {
        path: PathBuf,
        problems: Vec<String>,
    },
    #[error("--set {0}: {1}")]
    Override(String, String),
    #[error("results store: {0}")]
    Store(String),
}

impl RunnerError {
    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Self::Io {
            path: path.into(),
            source,
        }
    }
}
