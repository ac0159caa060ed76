//! CIFAR-10 and CIFAR-100, official "binary version".
//!
//! CIFAR-10 records are 1 label byte + 3072 pixel bytes (1024 R, 1024 G,
//! 1024 B, row-major 32x32); CIFAR-100 records carry a coarse and a fine
//! label byte first. Record counts come from the file size: subsets and the
//! full files are read alike.

use std::path::{Path, PathBuf};

use crate::error::DataError;
use crate::image_set::{ImageSet, TrainTest};
use crate::transform::Normalization;

/// Pixels a side of a CIFAR image.
pub const SIZE: usize = 32;
const PIXELS: usize = 3 * SIZE * SIZE;

pub const CIFAR10_TRAIN_FILES: [&str; 5] = [
    "data_batch_1.bin",
    "data_batch_2.bin",
    "data_batch_3.bin",
    "data_batch_4.bin",
    "data_batch_5.bin",
];
pub const CIFAR10_TEST_FILE: &str = "test_batch.bin";

pub const CIFAR10_NORMALIZATION: Normalization = Normalization {
    mean: [0.4914, 0.4822, 0.4465],
    std: [0.2470, 0.2435, 0.2615],
};
pub const CIFAR100_NORMALIZATION: Normalization = Normalization {
    mean: [0.5071, 0.4867, 0.4408],
    std: [0.2675, 0.2565, 0.2761],
};

const CIFAR10_CLASSES: [&str; 10] = [
    "airplane",
    "automobile",
    "bird",
    "cat",
    "deer",
    "dog",
    "frog",
    "horse",
    "ship",
    "truck",
];

/// The files a CIFAR-10 root must hold.
pub fn cifar10_files(root: &Path) -> Vec<PathBuf> {
    CIFAR10_TRAIN_FILES
        .iter()
        .chain(std::iter::once(&CIFAR10_TEST_FILE))
        .map(|f| root.join(f))
        .collect()
}

/// The files a CIFAR-100 root must hold.
pub fn cifar100_files(root: &Path) -> Vec<PathBuf> {
    vec![root.join("train.bin"), root.join("test.bin")]
}

/// Reads records of `label_bytes` label bytes + 3072 pixels; `label_index`
/// picks which label byte is the class.
fn read_records(
    path: &Path,
    label_bytes: usize,
    label_index: usize,
    num_classes: usize,
    records_per_file: Option<usize>,
    into: &mut ImageSet,
) -> Result<(), DataError> {
    let record = label_bytes + PIXELS;
    let bytes = std::fs::read(path).map_err(|e| DataError::io(path, e))?;
    if !bytes.len().is_multiple_of(record) || bytes.is_empty() {
        return Err(DataError::Truncated {
            path: path.to_path_buf(),
            size: bytes.len() as u64,
            record,
        });
    }
    let held = bytes.len() / record;
    let take = records_per_file.unwrap_or(held);
    if take > held {
        return Err(DataError::Format {
            path: path.to_path_buf(),
            message: format!("holds {held} records; records_per_file asks for the first {take}"),
        });
    }
    for (i, rec) in bytes.chunks_exact(record).take(take).enumerate() {
        let label = rec[label_index] as usize;
        if label >= num_classes {
            return Err(DataError::Format {
                path: path.to_path_buf(),
                message: format!("record {i} has label {label}, expected < {num_classes}"),
            });
        }
        into.push(&rec[label_bytes..], label as u32);
    }
    Ok(())
}

fn read_names(path: &Path, fallback: &[&str]) -> Vec<String> {
    std::fs::read_to_string(path)
        .ok()
        .map(|s| {
            s.lines()
                .map(str::trim)
                .filter(|l| !l.is_empty())
                .map(String::from)
                .collect::<Vec<_>>()
        })
        .filter(|names| names.len() == fallback.len() || fallback.is_empty())
        .unwrap_or_else(|| fallback.iter().map(|s| s.to_string()).collect())
}

fn check_root(root: &Path, expected: &str) -> Result<(), DataError> {
    if root.is_dir() {
        Ok(())
    } else {
        Err(DataError::MissingRoot {
            root: root.to_path_buf(),
            expected: expected.to_string(),
        })
    }
}

/// Loads CIFAR-10 from the folder holding `data_batch_*.bin` and `test_batch.bin`.
pub fn load_cifar10(root: &Path) -> Result<TrainTest, DataError> {
    load_cifar10_first(root, None)
}

/// CIFAR-10 with only the first `records_per_file` records of each file
/// (every file, when `None`): the cut `../shared/datasets` is, so that the
/// official files give exactly its images.
pub fn load_cifar10_first(
    root: &Path,
    records_per_file: Option<usize>,
) -> Result<TrainTest, DataError> {
    check_root(
        root,
        "data_batch_1.bin .. data_batch_5.bin and test_batch.bin",
    )?;
    let mut train = ImageSet::empty(3, 32, 32);
    for f in CIFAR10_TRAIN_FILES {
        read_records(&root.join(f), 1, 0, 10, records_per_file, &mut train)?;
    }
    let mut test = ImageSet::empty(3, 32, 32);
    read_records(
        &root.join(CIFAR10_TEST_FILE),
        1,
        0,
        10,
        records_per_file,
        &mut test,
    )?;
    Ok(TrainTest {
        name: "cifar10".into(),
        num_classes: 10,
        class_names: read_names(&root.join("batches.meta.txt"), &CIFAR10_CLASSES),
        train,
        test,
        validation: None,
        normalization: CIFAR10_NORMALIZATION,
        group_names: Vec::new(),
    })
}

/// Images per class of the test file (`test`) or the training files, read
/// from the label bytes alone (no pixels decoded): for validation before a
/// grid runs. `None` when a file cannot be read or holds a label out of range.
pub fn label_counts(
    root: &Path,
    cifar100: bool,
    test: bool,
    records_per_file: Option<usize>,
) -> Option<Vec<usize>> {
    let (files, label_bytes, label_index, classes) = match (cifar100, test) {
        (false, true) => (vec![root.join(CIFAR10_TEST_FILE)], 1, 0, 10),
        (false, false) => (
            CIFAR10_TRAIN_FILES.iter().map(|f| root.join(f)).collect(),
            1,
            0,
            10,
        ),
        (true, true) => (vec![root.join("test.bin")], 2, 1, 100),
        (true, false) => (vec![root.join("train.bin")], 2, 1, 100),
    };
    let mut counts = vec![0usize; classes];
    for file in files {
        let bytes = std::fs::read(file).ok()?;
        let records = bytes.chunks_exact(label_bytes + PIXELS);
        for rec in records.take(records_per_file.unwrap_or(usize::MAX)) {
            *counts.get_mut(rec[label_index] as usize)? += 1;
        }
    }
    Some(counts)
}

/// Loads CIFAR-100 (fine labels) from the folder holding `train.bin` and `test.bin`.
pub fn load_cifar100(root: &Path) -> Result<TrainTest, DataError> {
    load_cifar100_first(root, None)
}

/// CIFAR-100 with only the first `records_per_file` records of each file.
pub fn load_cifar100_first(
    root: &Path,
    records_per_file: Option<usize>,
) -> Result<TrainTest, DataError> {
    check_root(root, "train.bin and test.bin")?;
    let mut train = ImageSet::empty(3, 32, 32);
    read_records(
        &root.join("train.bin"),
        2,
        1,
        100,
        records_per_file,
        &mut train,
    )?;
    let mut test = ImageSet::empty(3, 32, 32);
    read_records(
        &root.join("test.bin"),
        2,
        1,
        100,
        records_per_file,
        &mut test,
    )?;
    let mut names = read_names(&root.join("fine_label_names.txt"), &[]);
    if names.len() != 100 {
        names = (0..100).map(|i| format!("class{i}")).collect();
    }
    Ok(TrainTest {
        name: "cifar100".into(),
        num_classes: 100,
        class_names: names,
        train,
        test,
        validation: None,
        normalization: CIFAR100_NORMALIZATION,
        group_names: Vec::new(),
    })
}

/// Writes `set` as one CIFAR-10 binary file (labels must be < 256).
pub fn write_cifar10_file(path: &Path, set: &ImageSet) -> Result<(), DataError> {
    let mut out = Vec::with_capacity(set.len() * (PIXELS + 1));
    for i in 0..set.len() {
        out.push(set.labels[i] as u8);
        out.extend_from_slice(set.image(i));
    }
    std::fs::write(path, out).map_err(|e| DataError::io(path, e))
}

/// Writes a small CIFAR-10 tree in the official layout, with the images of a
/// synthetic dataset: the fixture tests and smoke grids read.
pub fn write_cifar10_fixture(
    root: &Path,
    per_class_per_file: usize,
    seed: u64,
) -> Result<(), DataError> {
    std::fs::create_dir_all(root).map_err(|e| DataError::io(root, e))?;
    let data = crate::synthetic::generate(10, per_class_per_file * 5, per_class_per_file, seed)?;
    // Spread the training images over the five batch files, like the original.
    let mut parts: Vec<ImageSet> = (0..5).map(|_| ImageSet::empty(3, 32, 32)).collect();
    for i in 0..data.train.len() {
        parts[i % 5].push(data.train.image(i), data.train.labels[i]);
    }
    for (file, part) in CIFAR10_TRAIN_FILES.iter().zip(&parts) {
        write_cifar10_file(&root.join(file), part)?;
    }
    write_cifar10_file(&root.join(CIFAR10_TEST_FILE), &data.test)?;
    let meta = CIFAR10_CLASSES.join("\n") + "\n";
    let p = root.join("batches.meta.txt");
    std::fs::write(&p, meta).map_err(|e| DataError::io(&p, e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fixture_round_trips() {
        let dir = tempfile::tempdir().unwrap();
        write_cifar10_fixture(dir.path(), 3, 1).unwrap();
        let data = load_cifar10(dir.path()).unwrap();
        assert_eq!(data.train.len(), 10 * 15);
        assert_eq!(data.test.len(), 10 * 3);
        assert_eq!(data.class_names[3], "cat");
        let synth = crate::synthetic::generate(10, 15, 3, 1).unwrap();
        // Test images are stored in order; compare the first exactly.
        assert_eq!(data.test.image(0), synth.test.image(0));
        assert_eq!(data.test.labels, synth.test.labels);
        for c in 0..10 {
            assert_eq!(data.train.labels.iter().filter(|&&l| l == c).count(), 15);
        }
    }

    #[test]
    fn truncated_file_names_path_and_sizes() {
        let dir = tempfile::tempdir().unwrap();
        write_cifar10_fixture(dir.path(), 1, 1).unwrap();
        let p = dir.path().join("data_batch_3.bin");
        let bytes = std::fs::read(&p).unwrap();
        std::fs::write(&p, &bytes[..bytes.len() - 100]).unwrap();
        let err = load_cifar10(dir.path()).unwrap_err();
        let msg = err.to_string();
        assert!(
            matches!(err, DataError::Truncated { record: 3073, .. }),
            "{msg}"
        );
        assert!(msg.contains("data_batch_3.bin"), "{msg}");
        assert!(msg.contains("3073"), "{msg}");
    }

    #[test]
    fn missing_file_is_named() {
        let dir = tempfile::tempdir().unwrap();
        write_cifar10_fixture(dir.path(), 1, 1).unwrap();
        std::fs::remove_file(dir.path().join("test_batch.bin")).unwrap();
        let msg = load_cifar10(dir.path()).unwrap_err().to_string();
        assert!(msg.contains("test_batch.bin"), "{msg}");
        let missing = load_cifar10(&dir.path().join("nope")).unwrap_err();
        assert!(matches!(missing, DataError::MissingRoot { .. }));
    }

    #[test]
    fn bad_label_is_reported_with_record() {
        let dir = tempfile::tempdir().unwrap();
        write_cifar10_fixture(dir.path(), 1, 1).unwrap();
        let p = dir.path().join("test_batch.bin");
        let mut bytes = std::fs::read(&p).unwrap();
        bytes[3073] = 42;
        std::fs::write(&p, bytes).unwrap();
        let msg = load_cifar10(dir.path()).unwrap_err().to_string();
        assert!(msg.contains("record 1 has label 42"), "{msg}");
    }

    #[test]
    fn cifar100_reads_fine_labels() {
        let dir = tempfile::tempdir().unwrap();
        let mut rec = Vec::new();
        for i in 0..4u8 {
            rec.push(i % 20); // coarse
            rec.push(i * 7); // fine
            rec.extend(std::iter::repeat_n(i, PIXELS));
        }
        std::fs::write(dir.path().join("train.bin"), &rec).unwrap();
        std::fs::write(dir.path().join("test.bin"), &rec[..2 * (PIXELS + 2)]).unwrap();
        let data = load_cifar100(dir.path()).unwrap();
        assert_eq!(data.train.labels, vec![0, 7, 14, 21]);
        assert_eq!(data.test.len(), 2);
        assert_eq!(data.train.image(2)[0], 2);
    }

    /// The real subset beside the project: 1017 records per file.
    #[test]
    fn reads_shared_cifar10_subset() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../../shared/datasets/cifar-10-subset/cifar-10-batches-bin");
        if !root.is_dir() {
            eprintln!("skipped: {} not present", root.display());
            return;
        }
        let data = load_cifar10(&root).unwrap();
        assert_eq!(data.train.len(), 5 * 1017);
        assert_eq!(data.test.len(), 1017);
        assert_eq!(data.class_names[0], "airplane");
        for c in 0..10 {
            let n = data.test.labels.iter().filter(|&&l| l == c).count();
            assert!((70..=140).contains(&n), "class {c}: {n} test images");
        }
        // Real photos are not constant images.
        let img = data.train.image(0);
        assert!(img.iter().any(|&p| p != img[0]));
    }
}
