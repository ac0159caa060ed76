//! Unpacking the archives the datasets come in.

use std::fs::File;
use std::path::Path;

use crate::error::FetchError;

/// Unpacks a `.zip`, `.tar.gz` / `.tgz` or `.tar` into `into`. Entries
/// that would land outside `into` (absolute paths, `..`) are refused by
/// both readers. A marker file beside the archive records a finished
/// unpack, so that fetching again does not unpack 50 GB twice.
pub fn extract(archive: &Path, into: &Path) -> Result<(), FetchError> {
    let file_name = archive.file_name().unwrap_or_default().to_string_lossy();
    let marker = archive.with_file_name(format!("{file_name}.unpacked"));
    if marker.exists() {
        return Ok(());
    }
    std::fs::create_dir_all(into).map_err(|e| FetchError::io(into, e))?;
    let name = archive.to_string_lossy().to_ascii_lowercase();
    let file = File::open(archive).map_err(|e| FetchError::io(archive, e))?;
    let failed = |message: String| FetchError::Extract {
        path: archive.to_path_buf(),
        message,
    };
    if name.ends_with(".zip") {
        let mut zip = zip::ZipArchive::new(file).map_err(|e| failed(e.to_string()))?;
        zip.extract(into).map_err(|e| failed(e.to_string()))?;
    } else if name.ends_with(".tar.gz") || name.ends_with(".tgz") {
        tar::Archive::new(flate2::read::GzDecoder::new(file))
            .unpack(into)
            .map_err(|e| failed(e.to_string()))?;
    } else if name.ends_with(".tar") {
        tar::Archive::new(file)
            .unpack(into)
            .map_err(|e| failed(e.to_string()))?;
    } else {
        return Err(failed("not a .zip, .tar.gz or .tar".into()));
    }
    std::fs::write(&marker, "").map_err(|e| FetchError::io(&marker, e))
}
