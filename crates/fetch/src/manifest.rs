//! Where each dataset comes from and what its files hash to.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::error::FetchError;

/// The manifest shipped with the repository.
const BUILT_IN: &str = include_str!("../../../datasets/manifest.json");

/// How an extracted copy is laid out, which says how to verify it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Layout {
    /// CIFAR-10 binary version: five training batches and a test batch of
    /// 10 000 records of 1 + 3072 bytes.
    Cifar10,
    /// CIFAR-100 binary version: train.bin (50 000) and test.bin (10 000),
    /// records of 2 + 3072 bytes.
    Cifar100,
    /// Tiny ImageNet-200: 200 wnids, 500 training JPEGs per class, 10 000
    /// validation JPEGs with their annotations.
    TinyImagenet,
    /// FMoW (WILDS `fmow_v1.1`): `rgb_metadata.csv` and one PNG per row.
    Fmow,
}

/// One dataset: where to get it and what it must hash to.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Entry {
    #[serde(skip)]
    pub name: String,
    pub url: String,
    /// The archive's file name in the target folder.
    pub archive: String,
    /// The archive's size, where published.
    pub bytes: Option<u64>,
    /// The archive's SHA-256, where published.
    pub sha256: Option<String>,
    /// Where the archive is unpacked, relative to the target folder.
    pub extract_to: PathBuf,
    /// The dataset's folder after unpacking (what a grid's `root` names).
    pub folder: PathBuf,
    pub layout: Layout,
    /// SHA-256 of the extracted files, by path inside `folder`.
    #[serde(default)]
    pub files: BTreeMap<String, String>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct Manifest {
    #[serde(rename = "_comment", default)]
    _comment: String,
    datasets: BTreeMap<String, Entry>,
}

impl Manifest {
    /// The manifest in the repository (`datasets/manifest.json`).
    pub fn built_in() -> Self {
        Self::parse(BUILT_IN, Path::new("datasets/manifest.json"))
            .expect("the built-in manifest parses (a unit test checks it)")
    }

    /// A manifest from a file (a mirror's, or a test's).
    pub fn from_file(path: &Path) -> Result<Self, FetchError> {
        let text = std::fs::read_to_string(path).map_err(|e| FetchError::io(path, e))?;
        Self::parse(&text, path)
    }

    fn parse(text: &str, file: &Path) -> Result<Self, FetchError> {
        let mut m: Manifest = serde_json::from_str(text).map_err(|e| FetchError::Manifest {
            file: file.to_path_buf(),
            message: e.to_string(),
        })?;
        for (name, entry) in &mut m.datasets {
            entry.name = name.clone();
            for hash in entry.sha256.iter().chain(entry.files.values()) {
                if hash.len() != 64 || !hash.bytes().all(|b| b.is_ascii_hexdigit()) {
                    return Err(FetchError::Manifest {
                        file: file.to_path_buf(),
                        message: format!(
                            "dataset `{name}`: `{hash}` is not a SHA-256 (64 hex digits)"
                        ),
                    });
                }
            }
        }
        Ok(m)
    }

    pub fn get(&self, name: &str) -> Result<&Entry, FetchError> {
        self.datasets
            .get(name)
            .ok_or_else(|| FetchError::UnknownDataset {
                name: name.to_string(),
                known: self.datasets.keys().cloned().collect::<Vec<_>>().join(", "),
            })
    }

    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.datasets.keys().map(String::as_str)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn built_in_manifest_names_the_four_datasets() {
        let m = Manifest::built_in();
        assert_eq!(
            m.names().collect::<Vec<_>>(),
            ["cifar10", "cifar100", "fmow", "tiny-imagenet"]
        );
        let c = m.get("cifar10").unwrap();
        assert_eq!(c.files.len(), 6);
        assert_eq!(c.folder, Path::new("cifar-10-batches-bin"));
        // FMoW's publisher gives no checksum: none is made up.
        assert!(m.get("fmow").unwrap().sha256.is_none());
        let err = m.get("mnist").unwrap_err().to_string();
        assert!(err.contains("mnist") && err.contains("cifar10"), "{err}");
    }

    #[test]
    fn a_malformed_checksum_names_the_file_and_dataset() {
        let text = r#"{"datasets": {"x": {"url": "http://h/x", "archive": "x.zip",
            "bytes": null, "sha256": "abc", "extract_to": "", "folder": "x",
            "layout": "fmow"}}}"#;
        let err = Manifest::parse(text, Path::new("m.json"))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("m.json") && err.contains("`x`") && err.contains("abc"),
            "{err}"
        );
    }
}
