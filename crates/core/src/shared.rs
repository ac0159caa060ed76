//! Results that a grid's cells share: values a cell computes that do not
//! depend on its method (the continual protocol's random-init reference),
//! computed by the first cell that needs them and read by the others.
//!
//! A value is stored under a key the protocol gives (its config less the
//! method) and the cell's context, which the runner sets: the build, the
//! content of every input the cell reads and its held-out split. So a value
//! is reused only where the cell would compute the same one, which keeps
//! rows bit-identical whether a value was computed or read. Files are
//! written to a temporary name and renamed, so a killed cell leaves a
//! whole file or none, and two workers that compute one value at once
//! write the same bytes. An unreadable or mismatched file is computed
//! again.

use std::path::{Path, PathBuf};

use serde::Serialize;
use serde::de::DeserializeOwned;
use sha2::{Digest, Sha256};

/// Where a grid keeps its shared values (`RESULTS/shared`), and what the
/// current cell's values depend on beyond their key.
#[derive(Debug, Clone)]
pub struct SharedResults {
    dir: PathBuf,
    context: String,
}

/// A stored value with what it was computed from, checked on reading.
#[derive(Serialize, serde::Deserialize)]
struct Stored<T> {
    name: String,
    context: String,
    key: serde_json::Value,
    value: T,
}

impl SharedResults {
    /// Values under `dir`, for a cell whose build, inputs and held-out
    /// split `context` sums up.
    pub fn new(dir: impl Into<PathBuf>, context: impl Into<String>) -> Self {
        Self {
            dir: dir.into(),
            context: context.into(),
        }
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The value `name` at `key`: read when a cell computed it already,
    /// otherwise computed by `compute` and stored. The flag says whether it
    /// was read. A failure to store is not the cell's failure: the value
    /// is then computed again by the next cell.
    pub fn get_or_compute<T, E>(
        &self,
        name: &str,
        key: &serde_json::Value,
        compute: impl FnOnce() -> Result<T, E>,
    ) -> Result<(T, bool), E>
    where
        T: Serialize + DeserializeOwned,
    {
        let path = self.path(name, key);
        if let Some(value) = self.read(&path, name, key) {
            return Ok((value, true));
        }
        let value = compute()?;
        let stored = Stored {
            name: name.to_string(),
            context: self.context.clone(),
            key: key.clone(),
            value,
        };
        let _ = write_atomic(&path, &stored);
        Ok((stored.value, false))
    }

    fn path(&self, name: &str, key: &serde_json::Value) -> PathBuf {
        let mut h = Sha256::new();
        for part in [name, &self.context, &canonical_json(key)] {
            h.update(part.as_bytes());
            h.update([0]);
        }
        let digest = hex(&h.finalize()[..8]);
        self.dir.join(format!("{name}-{digest}.json"))
    }

    fn read<T: DeserializeOwned>(
        &self,
        path: &Path,
        name: &str,
        key: &serde_json::Value,
    ) -> Option<T> {
        let text = std::fs::read_to_string(path).ok()?;
        let stored: Stored<T> = serde_json::from_str(&text).ok()?;
        (stored.name == name && stored.context == self.context && stored.key == *key)
            .then_some(stored.value)
    }
}

fn write_atomic<T: Serialize>(path: &Path, value: &T) -> std::io::Result<()> {
    let dir = path.parent().expect("a file in a folder");
    std::fs::create_dir_all(dir)?;
    let tmp = dir.join(format!(
        ".{}.{}.tmp",
        path.file_name()
            .and_then(|n| n.to_str())
            .unwrap_or("shared"),
        std::process::id()
    ));
    let text = serde_json::to_string(value).map_err(std::io::Error::other)?;
    std::fs::write(&tmp, text)?;
    std::fs::rename(&tmp, path)
}

/// Lower-case hexadecimal of `bytes` (digests in ids and file names).
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// JSON with object keys sorted, so that key order does not change what
/// is derived from it: the runner's cell ids and the paths of shared values.
pub fn canonical_json(v: &serde_json::Value) -> String {
    match v {
        serde_json::Value::Object(m) => {
            let mut keys: Vec<&String> = m.keys().collect();
            keys.sort();
            let inner: Vec<String> = keys
                .iter()
                .map(|k| {
                    format!(
                        "{}:{}",
                        serde_json::to_string(k).expect("a string serialises"),
                        canonical_json(&m[*k])
                    )
                })
                .collect();
            format!("{{{}}}", inner.join(","))
        }
        serde_json::Value::Array(a) => {
            format!(
                "[{}]",
                a.iter().map(canonical_json).collect::<Vec<_>>().join(",")
            )
        }
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use std::cell::Cell;

    use super::*;

    fn computed(store: &SharedResults, key: serde_json::Value, value: f64) -> (f64, bool) {
        store
            .get_or_compute("reference", &key, || Ok::<_, ()>(value))
            .unwrap()
    }

    #[test]
    fn a_value_is_computed_once_then_read_where_key_and_context_match() {
        let dir = tempfile::tempdir().unwrap();
        let store = SharedResults::new(dir.path().join("shared"), "build a");
        let key = serde_json::json!({ "seed": 0, "data": { "b": 1, "a": 2 } });
        assert_eq!(computed(&store, key.clone(), 0.25), (0.25, false));
        // Read back: the closure's value is not used, key order is irrelevant.
        let reordered = serde_json::json!({ "data": { "a": 2, "b": 1 }, "seed": 0 });
        assert_eq!(computed(&store, reordered, 9.0), (0.25, true));
        // Another key, another context: computed.
        assert_eq!(
            computed(&store, serde_json::json!({ "seed": 1 }), 0.5),
            (0.5, false)
        );
        let other = SharedResults::new(dir.path().join("shared"), "build b");
        assert_eq!(computed(&other, key, 0.75), (0.75, false));
        let files = std::fs::read_dir(dir.path().join("shared"))
            .unwrap()
            .count();
        assert_eq!(files, 3, "one file per value, no temporaries left");
    }

    #[test]
    fn a_damaged_file_is_computed_again_and_a_failure_is_not_stored() {
        let dir = tempfile::tempdir().unwrap();
        let store = SharedResults::new(dir.path(), "ctx");
        let key = serde_json::json!({ "seed": 0 });
        let calls = Cell::new(0);
        let failing = store.get_or_compute::<f64, _>("reference", &key, || {
            calls.set(calls.get() + 1);
            Err("no")
        });
        assert_eq!(failing, Err("no"));
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
        assert_eq!(computed(&store, key.clone(), 1.5), (1.5, false));
        let file = std::fs::read_dir(dir.path())
            .unwrap()
            .next()
            .unwrap()
            .unwrap()
            .path();
        std::fs::write(&file, "{ truncated").unwrap();
        assert_eq!(computed(&store, key.clone(), 2.5), (2.5, false));
        assert_eq!(computed(&store, key, 7.0), (2.5, true));
        assert_eq!(calls.get(), 1);
    }
}
