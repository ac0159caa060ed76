//! Getting the official datasets and checking a copy on disk.
//!
//! - [`manifest`]: where each dataset comes from and its checksums, kept in
//!   the repository (`datasets/manifest.json`, built into the binary).
//! - [`download`]: a resumable HTTP(S) download (`Range` requests on a
//!   `.part` file), checked against the archive's size and SHA-256.
//! - [`extract`]: unpacking `.tar.gz` and `.zip` archives.
//! - [`verify`]: file counts, record sizes and checksums of an extracted
//!   copy, or a sampled decode for trees of many images.
//!
//! Nothing here runs during a grid: the harness reads files and never
//! downloads them.

pub mod download;
mod error;
pub mod extract;
pub mod manifest;
pub mod verify;

pub use error::FetchError;
pub use manifest::{Entry, Layout, Manifest};
pub use verify::{Finding, Verdict, Verification};

use std::path::{Path, PathBuf};

/// Downloads `entry` into `to` (resuming a `.part` file left by an
/// interrupted run), checks it, unpacks it and verifies what it unpacked.
/// Returns the dataset's folder (what a grid's `root` names).
pub fn fetch(
    entry: &Entry,
    to: &Path,
    progress: bool,
) -> Result<(PathBuf, Verification), FetchError> {
    std::fs::create_dir_all(to).map_err(|e| FetchError::io(to, e))?;
    let archive = download::download(entry, to, progress)?;
    let into = to.join(&entry.extract_to);
    extract::extract(&archive, &into)?;
    let folder = to.join(&entry.folder);
    let report = verify::verify(entry, &folder)?;
    Ok((folder, report))
}
