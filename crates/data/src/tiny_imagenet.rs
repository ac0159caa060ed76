//! Tiny ImageNet-200 in its official layout:
//!
//! ```text
//! wnids.txt                              class ids, one per line (label = line index)
//! train/<wnid>/images/<wnid>_<i>.JPEG    training images
//! val/images/val_<i>.JPEG                the official validation set (our test set)
//! val/val_annotations.txt                file \t wnid \t box...
//! ```
//!
//! Every image becomes 3-channel RGB (some are grayscale) and, when asked,
//! is resized (bilinear) for CPU-sized runs. Record counts come from the
//! files. Decoding 100k JPEGs takes minutes, so the decoded sets are kept
//! in a compact binary cache beside the data (or in `cache_dir`), keyed by
//! a fingerprint of every source file's path, size and modification time
//! and of the image size: any change to the source makes a new cache.

use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use crate::error::DataError;
use crate::image_file::decode_files;
use crate::image_set::{ImageSet, TrainTest};
use crate::transform::Normalization;

/// Mammoth's Seq-TinyImageNet constants.
pub const NORMALIZATION: Normalization = Normalization {
    mean: [0.4802, 0.4480, 0.3975],
    std: [0.2770, 0.2691, 0.2821],
};
pub const NATIVE_SIZE: usize = 64;
const CACHE_MAGIC: &[u8; 8] = b"RBTINY01";

fn format_err(path: &Path, message: impl Into<String>) -> DataError {
    DataError::Format {
        path: path.to_path_buf(),
        message: message.into(),
    }
}

fn read_text(path: &Path) -> Result<String, DataError> {
    std::fs::read_to_string(path).map_err(|e| DataError::io(path, e))
}

/// The files a load reads, labelled, in a fixed order.
struct Listing {
    wnids: Vec<String>,
    train: Vec<(PathBuf, u32)>,
    test: Vec<(PathBuf, u32)>,
}

/// Sorts `<prefix>_<n>.JPEG` names by `n`, so that order does not depend
/// on the directory listing.
fn numeric_key(p: &Path) -> (u64, String) {
    let stem = p.file_stem().and_then(|s| s.to_str()).unwrap_or("");
    let n = stem
        .rsplit('_')
        .next()
        .and_then(|n| n.parse().ok())
        .unwrap_or(u64::MAX);
    (n, stem.to_string())
}

fn list(root: &Path) -> Result<Listing, DataError> {
    if !root.is_dir() {
        return Err(DataError::MissingRoot {
            root: root.to_path_buf(),
            expected: "the tiny-imagenet-200 folder (wnids.txt, train/, val/)".into(),
        });
    }
    let wnids_path = root.join("wnids.txt");
    let wnids: Vec<String> = read_text(&wnids_path)?
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(String::from)
        .collect();
    if wnids.is_empty() {
        return Err(format_err(&wnids_path, "no class ids"));
    }
    let label: HashMap<&str, u32> = wnids
        .iter()
        .enumerate()
        .map(|(i, w)| (w.as_str(), i as u32))
        .collect();

    let mut train = Vec::new();
    for (i, wnid) in wnids.iter().enumerate() {
        let dir = root.join("train").join(wnid).join("images");
        let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
            .map_err(|e| DataError::io(&dir, e))?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| {
                p.extension().is_some_and(|x| {
                    x.eq_ignore_ascii_case("jpeg") || x.eq_ignore_ascii_case("jpg")
                })
            })
            .collect();
        files.sort_by_key(|p| numeric_key(p));
        train.extend(files.into_iter().map(|p| (p, i as u32)));
    }

    let ann_path = root.join("val").join("val_annotations.txt");
    let mut test = Vec::new();
    for (n, line) in read_text(&ann_path)?.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let mut fields = line.split('\t');
        let (Some(file), Some(wnid)) = (fields.next(), fields.next()) else {
            return Err(format_err(
                &ann_path,
                format!("line {}: expected `file<TAB>wnid<TAB>...`", n + 1),
            ));
        };
        let Some(&l) = label.get(wnid) else {
            return Err(format_err(
                &ann_path,
                format!("line {}: class `{wnid}` is not in wnids.txt", n + 1),
            ));
        };
        test.push((root.join("val").join("images").join(file), l));
    }
    test.sort_by_key(|(p, _)| numeric_key(p));
    Ok(Listing { wnids, train, test })
}

/// Fingerprint of the sources and the output size.
fn fingerprint(root: &Path, listing: &Listing, size: usize) -> Result<u64, DataError> {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    (CACHE_MAGIC, size).hash(&mut h);
    let meta_files = [
        root.join("wnids.txt"),
        root.join("val").join("val_annotations.txt"),
    ];
    let images = listing.train.iter().chain(&listing.test).map(|(p, _)| p);
    for path in meta_files.iter().chain(images) {
        let (len, mtime) = crate::image_file::file_stamp(path)?;
        (path.strip_prefix(root).unwrap_or(path), len, mtime).hash(&mut h);
    }
    Ok(h.finish())
}

pub(crate) fn write_set(w: &mut impl Write, set: &ImageSet) -> std::io::Result<()> {
    w.write_all(&(set.len() as u64).to_le_bytes())?;
    for l in &set.labels {
        w.write_all(&l.to_le_bytes())?;
    }
    w.write_all(&set.pixels)
}

pub(crate) fn read_set(r: &mut impl Read, size: usize) -> std::io::Result<ImageSet> {
    let mut n = [0u8; 8];
    r.read_exact(&mut n)?;
    let n = u64::from_le_bytes(n) as usize;
    let mut set = ImageSet::empty(3, size, size);
    let mut labels = vec![0u8; 4 * n];
    r.read_exact(&mut labels)?;
    set.labels = labels
        .chunks_exact(4)
        .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .collect();
    set.pixels = vec![0u8; n * 3 * size * size];
    r.read_exact(&mut set.pixels)?;
    Ok(set)
}

/// Where the cache for `root` lives.
pub fn cache_folder(root: &Path, cache_dir: Option<&Path>) -> PathBuf {
    cache_dir
        .map(Path::to_path_buf)
        .unwrap_or_else(|| root.join(".reusebench-cache"))
}

/// What a load did, for logs and tests.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CacheUse {
    /// Read from a cache written earlier.
    Hit,
    /// Decoded and written to the cache.
    Written,
    /// Decoded; the cache folder could not be written (read-only data).
    Unwritable,
}

/// Loads Tiny ImageNet from `root` at `size`x`size` (64 = native).
pub fn load_tiny_imagenet(
    root: &Path,
    size: usize,
    cache_dir: Option<&Path>,
) -> Result<(TrainTest, CacheUse), DataError> {
    if size == 0 || size > 512 {
        return Err(DataError::Config(format!(
            "tiny-imagenet image_size must be in 1..=512, got {size}"
        )));
    }
    let listing = list(root)?;
    let key = fingerprint(root, &listing, size)?;
    let folder = cache_folder(root, cache_dir);
    let cache = folder.join(format!("tiny-imagenet-{size}px-{key:016x}.bin"));
    let finish = |train: ImageSet, test: ImageSet| TrainTest {
        name: "tiny-imagenet".into(),
        num_classes: listing.wnids.len(),
        class_names: listing.wnids.clone(),
        train,
        test,
        validation: None,
        normalization: NORMALIZATION,
        group_names: Vec::new(),
    };
    if let Ok(file) = std::fs::File::open(&cache) {
        let mut r = std::io::BufReader::new(file);
        let mut magic = [0u8; 8];
        let sets = r
            .read_exact(&mut magic)
            .and_then(|_| read_set(&mut r, size))
            .and_then(|train| Ok((train, read_set(&mut r, size)?)));
        if let (true, Ok((train, test))) = (&magic == CACHE_MAGIC, sets)
            && train.len() == listing.train.len()
            && test.len() == listing.test.len()
        {
            return Ok((finish(train, test), CacheUse::Hit));
        }
        // A damaged cache is rebuilt below.
    }
    let train = decode_files(&listing.train, size)?;
    let test = decode_files(&listing.test, size)?;
    let written = std::fs::create_dir_all(&folder).is_ok() && {
        let tmp = cache.with_extension("tmp");
        let ok = std::fs::File::create(&tmp)
            .and_then(|f| {
                let mut w = std::io::BufWriter::new(f);
                w.write_all(CACHE_MAGIC)?;
                write_set(&mut w, &train)?;
                write_set(&mut w, &test)?;
                w.flush()
            })
            .and_then(|_| std::fs::rename(&tmp, &cache))
            .is_ok();
        if !ok {
            let _ = std::fs::remove_file(&tmp);
        }
        ok
    };
    let use_ = if written {
        CacheUse::Written
    } else {
        CacheUse::Unwritable
    };
    Ok((finish(train, test), use_))
}

/// Writes a small Tiny ImageNet in the official layout: `classes` made-up
/// wnids, `train_per_class` training and `val_per_class` validation JPEGs
/// per class (every fifth one grayscale), 64x64, each image a flat colour
/// that encodes its class (so labels can be checked after decoding).
pub fn write_tiny_imagenet_fixture(
    root: &Path,
    classes: usize,
    train_per_class: usize,
    val_per_class: usize,
) -> Result<(), DataError> {
    let io = |p: &Path, e| DataError::io(p, e);
    let wnids: Vec<String> = (0..classes)
        .map(|c| format!("n{:08}", 1000 + c * 7))
        .collect();
    std::fs::create_dir_all(root.join("val/images")).map_err(|e| io(root, e))?;
    let path = root.join("wnids.txt");
    std::fs::write(&path, wnids.join("\n") + "\n").map_err(|e| io(&path, e))?;
    let words: String = wnids.iter().map(|w| format!("{w}\tclass {w}\n")).collect();
    let path = root.join("words.txt");
    std::fs::write(&path, words).map_err(|e| io(&path, e))?;
    let save = |path: &Path, class: usize, k: usize| -> Result<(), DataError> {
        let v = (class * 255 / classes.max(1)) as u8;
        let img = if k % 5 == 4 {
            image::DynamicImage::ImageLuma8(image::GrayImage::from_pixel(64, 64, image::Luma([v])))
        } else {
            image::DynamicImage::ImageRgb8(image::RgbImage::from_pixel(
                64,
                64,
                image::Rgb([v, 255 - v, 128]),
            ))
        };
        img.save_with_format(path, image::ImageFormat::Jpeg)
            .map_err(|e| format_err(path, e.to_string()))
    };
    for (c, wnid) in wnids.iter().enumerate() {
        let dir = root.join("train").join(wnid).join("images");
        std::fs::create_dir_all(&dir).map_err(|e| io(&dir, e))?;
        let mut boxes = String::new();
        for k in 0..train_per_class {
            let name = format!("{wnid}_{k}.JPEG");
            save(&dir.join(&name), c, k)?;
            boxes.push_str(&format!("{name}\t0\t0\t63\t63\n"));
        }
        let path = root
            .join("train")
            .join(wnid)
            .join(format!("{wnid}_boxes.txt"));
        std::fs::write(&path, boxes).map_err(|e| io(&path, e))?;
    }
    let mut ann = String::new();
    for k in 0..classes * val_per_class {
        // Classes interleaved, as in the official file.
        let c = k % classes;
        let name = format!("val_{k}.JPEG");
        save(&root.join("val/images").join(&name), c, k / classes)?;
        ann.push_str(&format!("{name}\t{}\t0\t0\t63\t63\n", wnids[c]));
    }
    let path = root.join("val/val_annotations.txt");
    std::fs::write(&path, ann).map_err(|e| io(&path, e))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn class_of(set: &ImageSet, i: usize, classes: usize) -> usize {
        // Red channel's mean encodes the class; JPEG is lossy, so round.
        let img = set.image(i);
        let plane = set.height * set.width;
        let mean = img[..plane].iter().map(|&v| v as f64).sum::<f64>() / plane as f64;
        ((mean * classes as f64 / 255.0) + 0.5).floor() as usize
    }

    #[test]
    fn fixture_loads_with_labels_rgb_and_cache() {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path().join("tiny-imagenet-200");
        write_tiny_imagenet_fixture(&root, 4, 5, 3).unwrap();
        let (data, used) = load_tiny_imagenet(&root, 64, None).unwrap();
        assert_eq!(used, CacheUse::Written);
        assert_eq!(
            (data.train.len(), data.test.len(), data.num_classes),
            (20, 12, 4)
        );
        assert_eq!((data.train.channels, data.train.height), (3, 64));
        for (set, n) in [(&data.train, 20), (&data.test, 12)] {
            for i in 0..n {
                assert_eq!(class_of(set, i, 4), set.labels[i] as usize, "image {i}");
            }
        }
        // Grayscale files become three equal channels.
        let gray = data.train.image(4);
        assert_eq!(gray[0], gray[64 * 64]);
        // Second load: from the cache, identical.
        let (again, used) = load_tiny_imagenet(&root, 64, None).unwrap();
        assert_eq!(used, CacheUse::Hit);
        assert_eq!(again.train.pixels, data.train.pixels);
        assert_eq!(again.test.labels, data.test.labels);
        // A changed source invalidates it.
        std::thread::sleep(std::time::Duration::from_millis(20));
        let ann = root.join("val/val_annotations.txt");
        let text = std::fs::read_to_string(&ann).unwrap();
        std::fs::write(&ann, text.lines().take(8).collect::<Vec<_>>().join("\n")).unwrap();
        let (changed, used) = load_tiny_imagenet(&root, 64, None).unwrap();
        assert_eq!(used, CacheUse::Written);
        assert_eq!(changed.test.len(), 8);
        // Resized for CPU runs.
        let (small, _) = load_tiny_imagenet(&root, 32, None).unwrap();
        assert_eq!(small.train.height, 32);
        assert_eq!(class_of(&small.train, 7, 4), small.train.labels[7] as usize);
    }

    #[test]
    fn broken_layouts_name_the_file() {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path().join("t");
        write_tiny_imagenet_fixture(&root, 2, 2, 1).unwrap();
        let ann = root.join("val/val_annotations.txt");
        std::fs::write(&ann, "val_0.JPEG\tn99999999\t0\t0\t1\t1\n").unwrap();
        let err = load_tiny_imagenet(&root, 64, None).unwrap_err().to_string();
        assert!(
            err.contains("val_annotations.txt") && err.contains("n99999999"),
            "{err}"
        );
        write_tiny_imagenet_fixture(&root, 2, 2, 1).unwrap();
        std::fs::write(
            root.join("train/n00001000/images/n00001000_1.JPEG"),
            b"not a jpeg",
        )
        .unwrap();
        let err = load_tiny_imagenet(&root, 64, None).unwrap_err().to_string();
        assert!(err.contains("n00001000_1.JPEG"), "{err}");
        let err = load_tiny_imagenet(&tmp.path().join("absent"), 64, None)
            .unwrap_err()
            .to_string();
        assert!(err.contains("absent"), "{err}");
    }

    /// The real subset beside the project: 200 classes, 100 training images
    /// each, the complete validation set, some grayscale JPEGs.
    #[test]
    fn reads_the_shared_subset() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../../shared/datasets/tiny-imagenet-200-subset/tiny-imagenet-200");
        if !root.is_dir() {
            eprintln!("skipped: {} not present", root.display());
            return;
        }
        let cache = tempfile::tempdir().unwrap();
        let (data, used) = load_tiny_imagenet(&root, 64, Some(cache.path())).unwrap();
        assert_eq!(used, CacheUse::Written);
        assert_eq!(
            (data.train.len(), data.test.len(), data.num_classes),
            (20_000, 10_000, 200)
        );
        for c in 0..200u32 {
            assert_eq!(data.train.labels.iter().filter(|&&l| l == c).count(), 100);
            assert_eq!(data.test.labels.iter().filter(|&&l| l == c).count(), 50);
        }
        assert_eq!(data.class_names[0], "n02124075");
        let (again, used) = load_tiny_imagenet(&root, 64, Some(cache.path())).unwrap();
        assert_eq!(used, CacheUse::Hit);
        assert_eq!(again.train.pixels.len(), data.train.pixels.len());
    }
}
