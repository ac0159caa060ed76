//! What a done cell was computed from, so that a result is reused only
//! while that still holds: the typed config with every default applied
//! (a default changed in code changes it), the content of every input it
//! read, and the build. Stored as `identity.json` beside the cell's rows;
//! a done cell whose identity differs from today's is **stale**: `run`
//! runs it again (unless `--keep-stale`), `status` lists it with the reason.

use std::collections::HashMap;
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::cell::{Cell, canonical_json, hex};

/// Bumped when a config type changes meaning without changing its fields'
/// values (a renamed unit, a reinterpreted key): every cell becomes stale.
/// 2: training holds the validation split out (every cell trains on less).
pub const CONFIG_SCHEMA: u32 = 2;

/// Files up to this size are hashed whole; larger ones by size, mtime and
/// three sampled blocks.
const WHOLE_FILE: u64 = 8 << 20;
const BLOCK: u64 = 64 << 10;

/// A cell's config, inputs and build, as digests.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Identity {
    pub schema: u32,
    /// SHA-256 of the typed config (defaults applied), keys sorted.
    pub config: String,
    /// Every input the cell reads, with its content digest.
    pub inputs: Vec<Input>,
    /// `reusebench <version> (<git commit>)`.
    pub build: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Input {
    pub path: PathBuf,
    /// `missing` where the file does not exist.
    pub digest: String,
}

/// This build: the crate version and the git commit it was built from.
pub fn build() -> String {
    let commit = option_env!("REUSEBENCH_GIT_COMMIT").unwrap_or("unknown");
    format!("reusebench {} ({commit})", env!("CARGO_PKG_VERSION"))
}

/// Input digests computed once per process for each path and its mtime:
/// a grid's cells read the same dataset again and again.
#[derive(Default)]
pub struct Digests {
    known: Mutex<HashMap<(PathBuf, Option<std::time::SystemTime>), String>>,
}

impl Digests {
    /// The content digest of `path` (a file or a folder), `missing` if absent.
    pub fn of(&self, path: &Path) -> String {
        let mtime = std::fs::metadata(path).and_then(|m| m.modified()).ok();
        let key = (path.to_path_buf(), mtime);
        if let Some(d) = self.known.lock().expect("not poisoned").get(&key) {
            return d.clone();
        }
        let digest = digest(path);
        self.known
            .lock()
            .expect("not poisoned")
            .insert(key, digest.clone());
        digest
    }
}

impl Identity {
    /// What `cell` would be computed from now.
    pub fn of(cell: &Cell, digests: &Digests) -> Self {
        let typed = cell.typed_json();
        let mut h = Sha256::new();
        h.update(canonical_json(&typed).as_bytes());
        let inputs = cell
            .config
            .inputs()
            .into_iter()
            .map(|path| {
                let digest = digests.of(&path);
                Input { path, digest }
            })
            .collect();
        Self {
            schema: CONFIG_SCHEMA,
            config: hex(&h.finalize()),
            inputs,
            build: build(),
        }
    }

    /// What a value shared between cells depends on beyond the key its
    /// protocol gives (see `reusebench_core::shared`): the schema, the
    /// build, every input's content and the held-out split.
    pub fn shared_context(&self, cell: &Cell) -> String {
        let mut h = Sha256::new();
        h.update(self.schema.to_le_bytes());
        h.update(self.build.as_bytes());
        for input in &self.inputs {
            h.update([0]);
            h.update(input.path.to_string_lossy().as_bytes());
            h.update([0]);
            h.update(input.digest.as_bytes());
        }
        let held = serde_json::to_value(&cell.held_out).expect("serialises");
        h.update(canonical_json(&held).as_bytes());
        hex(&h.finalize())
    }

    /// Why a result computed under `stored` does not hold under `self`, in
    /// words; empty when it still holds.
    pub fn changes_since(&self, stored: &Identity) -> Vec<String> {
        let mut why = Vec::new();
        if stored.schema != self.schema {
            why.push(format!("config schema {} → {}", stored.schema, self.schema));
        }
        if stored.config != self.config {
            why.push("the config with its defaults changed".into());
        }
        for input in &self.inputs {
            match stored.inputs.iter().find(|i| i.path == input.path) {
                Some(old) if old.digest == input.digest => {}
                Some(_) => why.push(format!("input {} changed", input.path.display())),
                None => why.push(format!("input {} is new", input.path.display())),
            }
        }
        if stored.build != self.build {
            why.push(format!("built by {}, now {}", stored.build, self.build));
        }
        why
    }
}

/// Why the done cell in `dir` is stale (empty: it is current). A done cell
/// without a stored identity was written by an older build.
pub fn stale_reasons(dir: &Path, now: &Identity) -> Vec<String> {
    match read(dir) {
        Some(stored) => now.changes_since(&stored),
        None => vec!["no identity recorded (written by an older build)".into()],
    }
}

pub fn read(dir: &Path) -> Option<Identity> {
    let text = std::fs::read_to_string(dir.join("identity.json")).ok()?;
    serde_json::from_str(&text).ok()
}

/// A file: SHA-256 of its bytes (small files, and every checkpoint or head
/// whatever its size), or of its size, mtime and three 64 KiB blocks. A
/// folder: its files' relative paths with their sizes and mtimes, hidden
/// entries (the loaders' decode caches) left out.
fn digest(path: &Path) -> String {
    let Ok(meta) = std::fs::metadata(path) else {
        return "missing".into();
    };
    let mut h = Sha256::new();
    if meta.is_dir() {
        let mut files = Vec::new();
        walk(path, path, &mut files);
        files.sort();
        for line in files {
            h.update(line.as_bytes());
            h.update([b'\n']);
        }
        return format!("tree:{}", hex(&h.finalize()));
    }
    let whole = meta.len() <= WHOLE_FILE || is_weights(path);
    let Ok(mut file) = std::fs::File::open(path) else {
        return "unreadable".into();
    };
    if whole {
        // Streamed: a checkpoint can be hundreds of MB, never held whole.
        if std::io::copy(&mut file, &mut h).is_err() {
            return "unreadable".into();
        }
        return format!("sha256:{}", hex(&h.finalize()));
    }
    h.update(meta.len().to_le_bytes());
    h.update(mtime_nanos(&meta).to_le_bytes());
    for at in [0, meta.len() / 2, meta.len().saturating_sub(BLOCK)] {
        let mut block = vec![0; BLOCK as usize];
        let read = file
            .seek(SeekFrom::Start(at))
            .and_then(|_| file.read(&mut block));
        if let Ok(n) = read {
            h.update(&block[..n]);
        }
    }
    format!("sampled:{}", hex(&h.finalize()))
}

fn is_weights(path: &Path) -> bool {
    matches!(
        path.extension().and_then(|e| e.to_str()),
        Some("safetensors" | "pth" | "pt" | "bin" | "mpk")
    )
}

fn mtime_nanos(meta: &std::fs::Metadata) -> u128 {
    meta.modified()
        .ok()
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .map_or(0, |d| d.as_nanos())
}

fn walk(root: &Path, dir: &Path, out: &mut Vec<String>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        if entry.file_name().to_string_lossy().starts_with('.') {
            continue;
        }
        let path = entry.path();
        let Ok(meta) = entry.metadata() else { continue };
        if meta.is_dir() {
            walk(root, &path, out);
        } else {
            let rel = path.strip_prefix(root).unwrap_or(&path);
            out.push(format!(
                "{} {} {}",
                rel.display(),
                meta.len(),
                mtime_nanos(&meta)
            ));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn changes_are_named() {
        let now = Identity {
            schema: CONFIG_SCHEMA,
            config: "c".into(),
            inputs: vec![Input {
                path: "ckpt.safetensors".into(),
                digest: "sha256:1".into(),
            }],
            build: "reusebench 0.1.0 (abc)".into(),
        };
        assert!(now.changes_since(&now).is_empty());
        let mut old = now.clone();
        old.inputs[0].digest = "sha256:0".into();
        old.config = "b".into();
        let why = now.changes_since(&old).join("; ");
        assert!(
            why.contains("input ckpt.safetensors changed")
                && why.contains("the config with its defaults changed"),
            "{why}"
        );
    }

    #[test]
    fn a_changed_file_or_folder_changes_its_digest_and_caches_do_not() {
        let tmp = tempfile::tempdir().unwrap();
        let written = |name: &str, bytes: &[u8]| {
            let path = tmp.path().join(name);
            std::fs::write(&path, bytes).unwrap();
            digest(&path)
        };
        assert_ne!(
            written("data.bin", b"abc"),
            written("data.bin", b"abd"),
            "new bytes"
        );
        assert_eq!(digest(&tmp.path().join("nope")), "missing");

        let folder = tmp.path().join("set");
        std::fs::create_dir_all(folder.join("train")).unwrap();
        std::fs::write(folder.join("train/a.png"), b"1").unwrap();
        let before = digest(&folder);
        // A loader's cache beside the data is not the data.
        std::fs::create_dir_all(folder.join(".reusebench-cache")).unwrap();
        std::fs::write(folder.join(".reusebench-cache/x"), b"cached").unwrap();
        assert_eq!(before, digest(&folder));
        std::fs::write(folder.join("train/b.png"), b"2").unwrap();
        assert_ne!(before, digest(&folder), "a new image");
    }
}
