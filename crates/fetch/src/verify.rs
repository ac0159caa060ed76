//! Checking a copy of a dataset on disk: is it the official one, a
//! well-formed subset of it, or broken?

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

use crate::download::sha256_file;
use crate::error::FetchError;
use crate::manifest::{Entry, Layout};

/// What a copy is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Every check against the official files passes: checksums where the
    /// manifest has them, else counts and a sampled decode.
    Official,
    /// Well-formed (the loaders read it), but smaller than the official
    /// files: a subset. Grids that name the full dataset will not
    /// reproduce on it.
    Subset,
    /// Missing, truncated or corrupt files.
    Broken,
}

/// One check and its outcome.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    pub ok: bool,
    pub what: String,
}

#[derive(Debug, Clone)]
pub struct Verification {
    pub dataset: String,
    pub folder: PathBuf,
    pub verdict: Verdict,
    pub findings: Vec<Finding>,
}

impl fmt::Display for Verification {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "{} at {}", self.dataset, self.folder.display())?;
        for x in &self.findings {
            writeln!(f, "  [{}] {}", if x.ok { "ok" } else { "!!" }, x.what)?;
        }
        let verdict = match self.verdict {
            Verdict::Official => "the official files",
            Verdict::Subset => {
                "a well-formed subset of the official files, not the files themselves"
            }
            Verdict::Broken => "broken: see the lines marked !!",
        };
        write!(f, "verdict: {verdict}")
    }
}

/// How many images a sampled decode opens.
const SAMPLE: usize = 64;

/// Verifies the copy at `dir`: the dataset's folder itself, or the folder
/// that holds it (where `data fetch --to` put it).
pub fn verify(entry: &Entry, dir: &Path) -> Result<Verification, FetchError> {
    let folder = if dir.join(&entry.folder).is_dir() {
        dir.join(&entry.folder)
    } else {
        dir.to_path_buf()
    };
    if !folder.is_dir() {
        return Err(FetchError::io(
            &folder,
            std::io::Error::new(std::io::ErrorKind::NotFound, "no such folder"),
        ));
    }
    let mut v = Verification {
        dataset: entry.name.clone(),
        folder: folder.clone(),
        verdict: Verdict::Official,
        findings: Vec::new(),
    };
    match entry.layout {
        Layout::Cifar10 => records(entry, &folder, 3073, CIFAR10_FILES, &mut v)?,
        Layout::Cifar100 => records(entry, &folder, 3074, CIFAR100_FILES, &mut v)?,
        Layout::TinyImagenet => tiny_imagenet(&folder, &mut v),
        Layout::Fmow => fmow(&folder, &mut v),
    }
    Ok(v)
}

impl Verification {
    fn pass(&mut self, what: String) {
        self.findings.push(Finding { ok: true, what });
    }
    fn fail(&mut self, what: String) {
        self.findings.push(Finding { ok: false, what });
        self.verdict = Verdict::Broken;
    }
    fn subset(&mut self, what: String) {
        self.findings.push(Finding { ok: true, what });
        if self.verdict == Verdict::Official {
            self.verdict = Verdict::Subset;
        }
    }
}

const CIFAR10_FILES: &[(&str, u64)] = &[
    ("data_batch_1.bin", 10_000),
    ("data_batch_2.bin", 10_000),
    ("data_batch_3.bin", 10_000),
    ("data_batch_4.bin", 10_000),
    ("data_batch_5.bin", 10_000),
    ("test_batch.bin", 10_000),
];
const CIFAR100_FILES: &[(&str, u64)] = &[("train.bin", 50_000), ("test.bin", 10_000)];

/// Fixed-size record files (CIFAR): each file's record count and SHA-256.
/// A file of the official size must hash to the official value; a smaller
/// one is a subset, checked against the folder's own `SHA256SUMS` where
/// it has one.
fn records(
    entry: &Entry,
    folder: &Path,
    record: u64,
    files: &[(&str, u64)],
    v: &mut Verification,
) -> Result<(), FetchError> {
    let own_sums = read_sha256sums(&folder.join("SHA256SUMS"));
    for &(name, official) in files {
        let path = folder.join(name);
        let Ok(meta) = std::fs::metadata(&path) else {
            v.fail(format!("{name}: missing"));
            continue;
        };
        let size = meta.len();
        if size == 0 || size % record != 0 {
            v.fail(format!(
                "{name}: {size} bytes is not a whole number of {record}-byte records"
            ));
            continue;
        }
        let n = size / record;
        let hash = sha256_file(&path)?;
        let expected = entry.files.get(name);
        match expected {
            Some(e) if e.eq_ignore_ascii_case(&hash) => {
                v.pass(format!("{name}: {n} records, SHA-256 matches the manifest"))
            }
            Some(e) if n == official => v.fail(format!(
                "{name}: {n} records but SHA-256 {hash}, the manifest's is {e} (corrupt)"
            )),
            None if n == official => {
                v.pass(format!("{name}: {n} records (no checksum in the manifest)"))
            }
            _ if n > official => {
                v.fail(format!("{name}: {n} records, more than the official {official}"))
            }
            _ => match own_sums.as_ref().and_then(|s| s.get(name)) {
                Some(e) if e.eq_ignore_ascii_case(&hash) => v.subset(format!(
                    "{name}: {n} of the official {official} records (a subset); matches the folder's SHA256SUMS"
                )),
                Some(e) => v.fail(format!(
                    "{name}: SHA-256 {hash}, the folder's SHA256SUMS says {e} (corrupt)"
                )),
                None if expected.is_some() => v.subset(format!(
                    "{name}: {n} of the official {official} records, SHA-256 not the manifest's: a subset, or a damaged copy (no SHA256SUMS in the folder to tell)"
                )),
                None => v.subset(format!(
                    "{name}: {n} of the official {official} records (a subset; no SHA256SUMS to check it against)"
                )),
            },
        }
    }
    Ok(())
}

/// `HASH  NAME` lines (sha256sum's output), by name.
fn read_sha256sums(path: &Path) -> Option<BTreeMap<String, String>> {
    let text = std::fs::read_to_string(path).ok()?;
    Some(
        text.lines()
            .filter_map(|l| {
                let (hash, name) = l.split_once(char::is_whitespace)?;
                Some((
                    name.trim().trim_start_matches('*').to_string(),
                    hash.to_string(),
                ))
            })
            .collect(),
    )
}

/// Image files directly in `dir` with extension `ext`, sorted.
fn images_in(dir: &Path, ext: &str) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x.eq_ignore_ascii_case(ext)))
        .collect();
    v.sort();
    v
}

/// Decodes an evenly spaced sample of `paths` and checks their size.
fn sampled_decode(paths: &[PathBuf], side: Option<u32>, v: &mut Verification) {
    let step = paths.len().div_ceil(SAMPLE).max(1);
    let mut opened = 0;
    for p in paths.iter().step_by(step) {
        match image::open(p) {
            Ok(img) if side.is_none_or(|s| img.width() == s && img.height() == s) => opened += 1,
            Ok(img) => {
                return v.fail(format!(
                    "{}: {}x{}, expected {}x{}",
                    p.display(),
                    img.width(),
                    img.height(),
                    side.unwrap_or(0),
                    side.unwrap_or(0)
                ));
            }
            Err(e) => return v.fail(format!("{}: does not decode: {e}", p.display())),
        }
    }
    v.pass(format!("a sample of {opened} images decodes"));
}

/// Tiny ImageNet-200: 200 wnids with 500 training JPEGs each, 10 000
/// annotated validation JPEGs.
fn tiny_imagenet(folder: &Path, v: &mut Verification) {
    let wnids: Vec<String> = match std::fs::read_to_string(folder.join("wnids.txt")) {
        Ok(t) => t
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .map(String::from)
            .collect(),
        Err(_) => return v.fail("wnids.txt: missing".into()),
    };
    if wnids.len() == 200 {
        v.pass("wnids.txt: 200 classes".into());
    } else {
        v.subset(format!(
            "wnids.txt: {} classes, the official file has 200",
            wnids.len()
        ));
    }
    let mut train: Vec<PathBuf> = Vec::new();
    let (mut fewest, mut most) = (usize::MAX, 0);
    for w in &wnids {
        let dir = folder.join("train").join(w).join("images");
        let files = images_in(&dir, "jpeg");
        if files.is_empty() {
            v.fail(format!("{}: no training images", dir.display()));
        }
        fewest = fewest.min(files.len());
        most = most.max(files.len());
        train.extend(files);
    }
    if v.verdict == Verdict::Broken {
        return;
    }
    if fewest == 500 && most == 500 {
        v.pass("train: 500 images in every class".into());
    } else if most <= 500 {
        let per_class = if fewest == most {
            format!("{most}")
        } else {
            format!("{fewest} to {most}")
        };
        v.subset(format!(
            "train: {per_class} images per class, the official set has 500"
        ));
    } else {
        v.fail(format!(
            "train: up to {most} images in a class, more than the official 500"
        ));
    }
    let annotations = match std::fs::read_to_string(folder.join("val/val_annotations.txt")) {
        Ok(t) => t,
        Err(_) => return v.fail("val/val_annotations.txt: missing".into()),
    };
    let known: std::collections::HashSet<&str> = wnids.iter().map(String::as_str).collect();
    let mut val = 0;
    for (i, line) in annotations
        .lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
    {
        let mut fields = line.split('\t');
        let (Some(file), Some(wnid)) = (fields.next(), fields.next()) else {
            return v.fail(format!(
                "val/val_annotations.txt line {}: not `file<TAB>wnid<TAB>…`",
                i + 1
            ));
        };
        if !known.contains(wnid) {
            return v.fail(format!(
                "val/val_annotations.txt line {}: class {wnid} is not in wnids.txt",
                i + 1
            ));
        }
        if !folder.join("val/images").join(file).is_file() {
            return v.fail(format!(
                "val/val_annotations.txt line {}: val/images/{file} is missing",
                i + 1
            ));
        }
        val += 1;
    }
    if val == 10_000 {
        v.pass("val: 10000 annotated images, every file present".into());
    } else {
        v.subset(format!(
            "val: {val} annotated images, the official set has 10000"
        ));
    }
    sampled_decode(&train, Some(64), v);
}

/// FMoW (WILDS): `rgb_metadata.csv` with one `images/rgb_img_<i>.png` per
/// row. WILDS publishes no checksums; counts and a sampled decode are what
/// can be checked.
fn fmow(folder: &Path, v: &mut Verification) {
    let metadata = match std::fs::read_to_string(folder.join("rgb_metadata.csv")) {
        Ok(t) => t,
        Err(_) => return v.fail("rgb_metadata.csv: missing".into()),
    };
    let mut lines = metadata.lines();
    let header: Vec<&str> = lines.next().unwrap_or_default().split(',').collect();
    for column in ["split", "category", "country_code", "timestamp"] {
        if !header.contains(&column) {
            return v.fail(format!("rgb_metadata.csv: no `{column}` column"));
        }
    }
    let rows = lines.filter(|l| !l.trim().is_empty()).count();
    if !folder.join("country_code_mapping.csv").is_file() {
        v.fail("country_code_mapping.csv: missing".into());
    }
    let images = images_in(&folder.join("images"), "png");
    let missing: Vec<usize> = (0..rows)
        .filter(|i| !folder.join(format!("images/rgb_img_{i}.png")).is_file())
        .take(3)
        .collect();
    if missing.is_empty() && images.len() == rows {
        v.pass(format!(
            "{rows} metadata rows, one image each (WILDS publishes no checksums)"
        ));
    } else if !missing.is_empty() {
        v.fail(format!(
            "images: {} for {rows} metadata rows; missing e.g. {}",
            images.len(),
            missing
                .iter()
                .map(|i| format!("rgb_img_{i}.png"))
                .collect::<Vec<_>>()
                .join(", ")
        ));
    } else {
        v.fail(format!(
            "images: {} files for {rows} metadata rows",
            images.len()
        ));
    }
    if v.verdict != Verdict::Broken {
        sampled_decode(&images, None, v);
    }
}
