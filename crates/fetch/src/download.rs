//! A resumable download into a `.part` file, checked before it takes the
//! archive's name.

use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

use sha2::{Digest, Sha256};

use crate::error::FetchError;
use crate::manifest::Entry;

/// Downloads `entry`'s archive into `to`, resuming `<archive>.part` where a
/// previous run stopped (a `Range` request; a server that ignores it sends
/// the whole file, and the part starts over). An archive already there is
/// checked again instead. Returns the archive's path.
pub fn download(entry: &Entry, to: &Path, progress: bool) -> Result<PathBuf, FetchError> {
    let target = to.join(&entry.archive);
    if target.exists() {
        check(entry, &target)?;
        return Ok(target);
    }
    let part = to.join(format!("{}.part", entry.archive));
    let have = std::fs::metadata(&part).map(|m| m.len()).unwrap_or(0);
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_connect(Some(Duration::from_secs(30)))
        .build()
        .into();
    let mut request = agent.get(&entry.url);
    if have > 0 {
        request = request.header("Range", format!("bytes={have}-"));
    }
    let http = |message: String| FetchError::Http {
        url: entry.url.clone(),
        message,
    };
    let response = request.call().map_err(|e| http(e.to_string()))?;
    let status = response.status().as_u16();
    let header = |name: &str| {
        response
            .headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
    };
    // Where the body starts: `have` when the server resumed at our offset.
    let start = match status {
        206 if content_range_start(header("content-range").as_deref()) == Some(have) => have,
        206 => {
            return Err(http(format!(
                "asked to resume at byte {have}, the server answered {:?}; delete {} to start over",
                header("content-range"),
                part.display()
            )));
        }
        200 => 0,
        // Nothing left to send: the part holds the whole file already.
        416 if have > 0 => have,
        s => return Err(http(format!("HTTP {s}"))),
    };
    let length = header("content-length").and_then(|v| v.parse::<u64>().ok());
    let total = entry.bytes.or(length.map(|l| l + start));
    let mut file = OpenOptions::new()
        .create(true)
        .write(true)
        .append(start > 0)
        .truncate(start == 0)
        .open(&part)
        .map_err(|e| FetchError::io(&part, e))?;
    if status != 416 {
        let bar = progress_bar(progress, total, start, &entry.archive);
        let mut body = response.into_body().into_reader();
        let mut buf = vec![0u8; 1 << 20];
        let mut got = start;
        loop {
            let n = body.read(&mut buf).map_err(|e| {
                http(format!(
                    "the connection broke after {got} bytes ({e}); {} is kept: run the same command again to resume",
                    part.display()
                ))
            })?;
            if n == 0 {
                break;
            }
            file.write_all(&buf[..n])
                .map_err(|e| FetchError::io(&part, e))?;
            got += n as u64;
            bar.set_position(got);
        }
        bar.finish_and_clear();
    }
    file.sync_all().map_err(|e| FetchError::io(&part, e))?;
    drop(file);
    check(entry, &part)?;
    std::fs::rename(&part, &target).map_err(|e| FetchError::io(&target, e))?;
    Ok(target)
}

/// `bytes START-END/TOTAL` → START.
fn content_range_start(value: Option<&str>) -> Option<u64> {
    value?
        .strip_prefix("bytes ")?
        .split('-')
        .next()?
        .trim()
        .parse()
        .ok()
}

fn progress_bar(show: bool, total: Option<u64>, at: u64, name: &str) -> indicatif::ProgressBar {
    if !show {
        return indicatif::ProgressBar::hidden();
    }
    let bar = match total {
        Some(t) => indicatif::ProgressBar::new(t),
        None => indicatif::ProgressBar::no_length(),
    };
    bar.set_style(
        indicatif::ProgressStyle::with_template(
            "{msg} {bar:30} {bytes}/{total_bytes} {bytes_per_sec} eta {eta}",
        )
        .expect("a valid template"),
    );
    bar.set_message(name.to_string());
    bar.set_position(at);
    bar
}

/// The archive's size and SHA-256 against the manifest's. A file that
/// fails is moved aside (`.corrupt`), so that the next run starts over and
/// the bad bytes stay there to inspect. Where the manifest has no checksum,
/// the one computed is written beside the archive (`<archive>.sha256`).
pub fn check(entry: &Entry, path: &Path) -> Result<(), FetchError> {
    let size = std::fs::metadata(path)
        .map_err(|e| FetchError::io(path, e))?
        .len();
    let kept = path.with_file_name(format!("{}.corrupt", entry.archive));
    let set_aside = || std::fs::rename(path, &kept).map_err(|e| FetchError::io(path, e));
    if let Some(expected) = entry.bytes
        && size != expected
    {
        set_aside()?;
        return Err(FetchError::Size {
            path: kept,
            expected,
            actual: size,
        });
    }
    let actual = sha256_file(path)?;
    match &entry.sha256 {
        Some(expected) if !expected.eq_ignore_ascii_case(&actual) => {
            set_aside()?;
            Err(FetchError::Checksum {
                path: path.to_path_buf(),
                expected: expected.clone(),
                actual,
                kept,
            })
        }
        Some(_) => Ok(()),
        None => {
            let note = path.with_file_name(format!("{}.sha256", entry.archive));
            std::fs::write(&note, format!("{actual}  {}\n", entry.archive))
                .map_err(|e| FetchError::io(&note, e))
        }
    }
}

/// A file's SHA-256, hex, read in 1 MiB blocks.
pub fn sha256_file(path: &Path) -> Result<String, FetchError> {
    let mut file = File::open(path).map_err(|e| FetchError::io(path, e))?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = file.read(&mut buf).map_err(|e| FetchError::io(path, e))?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    Ok(hex(&hasher.finalize()))
}

pub(crate) fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_range_is_parsed() {
        assert_eq!(content_range_start(Some("bytes 100-199/200")), Some(100));
        assert_eq!(content_range_start(Some("bytes */200")), None);
        assert_eq!(content_range_start(None), None);
    }

    #[test]
    fn sha256_of_abc_is_the_published_one() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("abc");
        std::fs::write(&p, "abc").unwrap();
        assert_eq!(
            sha256_file(&p).unwrap(),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }
}
