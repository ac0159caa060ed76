//! A researcher's own images, one folder per class (torchvision's
//! ImageFolder layout): `root/train/<class>/*.jpg`, `root/test/<class>/…`
//! and, optionally, `root/val/<class>/…` (then the dataset's own
//! validation split). Classes are the training folder's subfolders in name
//! order; JPEG, PNG and WebP are read. Decoded images are cached as Tiny
//! ImageNet's are (rebuilt when a file's size or mtime changes). An
//! optional groups file (`file,group` lines, files relative to the root,
//! as Waterbirds' or CelebA's metadata give them) assigns every image a
//! group, for worst-group metrics.

use std::collections::hash_map::DefaultHasher;
use std::hash::{Hash, Hasher};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use crate::error::DataError;
use crate::image_file::decode_files;
use crate::image_set::{ImageSet, TrainTest};
use crate::tiny_imagenet::{read_set, write_set};
use crate::transform::Normalization;

const CACHE_MAGIC: &[u8; 8] = b"RBFOLD01";

/// The file extensions read as images (case-insensitive).
pub const IMAGE_EXTENSIONS: [&str; 4] = ["jpg", "jpeg", "png", "webp"];

fn format_err(path: &Path, message: impl Into<String>) -> DataError {
    DataError::Format {
        path: path.to_path_buf(),
        message: message.into(),
    }
}

fn is_hidden(p: &Path) -> bool {
    p.file_name()
        .is_some_and(|n| n.to_string_lossy().starts_with('.'))
}

/// The class folders of a split, in name order.
fn class_folders(split: &Path) -> Result<Vec<String>, DataError> {
    if !split.is_dir() {
        return Err(DataError::MissingRoot {
            root: split.to_path_buf(),
            expected: "a folder with one subfolder per class".into(),
        });
    }
    let mut names: Vec<String> = std::fs::read_dir(split)
        .map_err(|e| DataError::io(split, e))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.is_dir() && !is_hidden(p))
        .map(|p| {
            p.file_name()
                .unwrap_or_default()
                .to_string_lossy()
                .to_string()
        })
        .collect();
    names.sort();
    if names.is_empty() {
        return Err(format_err(split, "no class folder in it"));
    }
    Ok(names)
}

/// A split's image files with their class index, checked: every class
/// folder holds images and nothing else (hidden files aside).
fn list_split(split: &Path, classes: &[String]) -> Result<Vec<(PathBuf, u32)>, DataError> {
    let mut out = Vec::new();
    for (label, class) in classes.iter().enumerate() {
        let dir = split.join(class);
        let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
            .map_err(|e| DataError::io(&dir, e))?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| !is_hidden(p))
            .collect();
        files.sort();
        for f in &files {
            let ext = f
                .extension()
                .map(|e| e.to_string_lossy().to_lowercase())
                .unwrap_or_default();
            if f.is_dir() || !IMAGE_EXTENSIONS.contains(&ext.as_str()) {
                return Err(format_err(
                    f,
                    format!(
                        "not an image file (a class folder holds only {} files)",
                        IMAGE_EXTENSIONS.join(", ")
                    ),
                ));
            }
        }
        if files.is_empty() {
            return Err(format_err(&dir, "an empty class folder"));
        }
        out.extend(files.into_iter().map(|f| (f, label as u32)));
    }
    Ok(out)
}

/// Where each split is, and the class names (the training split's folders).
pub struct Listing {
    pub classes: Vec<String>,
    pub train: Vec<(PathBuf, u32)>,
    pub test: Vec<(PathBuf, u32)>,
    pub val: Option<Vec<(PathBuf, u32)>>,
}

/// Lists and checks the folder tree: every split has the training split's
/// classes, every class folder holds image files only.
pub fn list(
    root: &Path,
    train: &Path,
    test: &Path,
    val: Option<&Path>,
) -> Result<Listing, DataError> {
    let train_dir = root.join(train);
    let classes = class_folders(&train_dir)?;
    let other = |dir: &Path| -> Result<Vec<(PathBuf, u32)>, DataError> {
        let found = class_folders(dir)?;
        if found != classes {
            let missing: Vec<&String> = classes.iter().filter(|c| !found.contains(c)).collect();
            let extra: Vec<&String> = found.iter().filter(|c| !classes.contains(c)).collect();
            return Err(format_err(
                dir,
                format!(
                    "its classes differ from {}'s: missing {missing:?}, not in training {extra:?}",
                    train_dir.display()
                ),
            ));
        }
        list_split(dir, &classes)
    };
    let test_list = other(&root.join(test))?;
    let val_list = val.map(|v| other(&root.join(v))).transpose()?;
    Ok(Listing {
        train: list_split(&train_dir, &classes)?,
        test: test_list,
        val: val_list,
        classes,
    })
}

fn fingerprint(listing: &Listing, size: usize) -> Result<u64, DataError> {
    let mut h = DefaultHasher::new();
    (CACHE_MAGIC, size, &listing.classes).hash(&mut h);
    let all = listing
        .train
        .iter()
        .chain(&listing.test)
        .chain(listing.val.iter().flatten());
    for (path, label) in all {
        (path, label, crate::image_file::file_stamp(path)?).hash(&mut h);
    }
    Ok(h.finish())
}

/// Every listed image's group, read from `groups` (a CSV of `file,group`
/// lines, an optional `file,group` header, files relative to `root`):
/// the group names in order of first appearance, and per split the group
/// index of each image in listing order. A file that does not exist, a
/// line without two fields, or an image the file leaves out is an error
/// naming the groups file and the line or the image.
pub fn read_groups(
    root: &Path,
    groups: &Path,
    listing: &Listing,
) -> Result<(Vec<String>, [Vec<u16>; 3]), DataError> {
    let path = root.join(groups);
    let text = std::fs::read_to_string(&path).map_err(|e| format_err(&path, e.to_string()))?;
    let mut names: Vec<String> = Vec::new();
    let mut of_file = std::collections::HashMap::<PathBuf, u16>::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || (n == 0 && line.eq_ignore_ascii_case("file,group")) {
            continue;
        }
        let malformed = || {
            format_err(
                &path,
                format!("line {}: expected `file,group`, got `{line}`", n + 1),
            )
        };
        let (file, group) = line.split_once(',').ok_or_else(malformed)?;
        let (file, group) = (file.trim(), group.trim());
        if file.is_empty() || group.is_empty() {
            return Err(malformed());
        }
        let file = root.join(file);
        // A line for a file that does not exist is a typo; lines for images
        // of splits the grid does not read (metadata covering a whole
        // dataset) are fine.
        if !file.is_file() {
            return Err(format_err(
                &path,
                format!("line {}: {} does not exist", n + 1, file.display()),
            ));
        }
        let index = match names.iter().position(|g| g == group) {
            Some(i) => i,
            None => {
                names.push(group.to_string());
                names.len() - 1
            }
        };
        let index = u16::try_from(index)
            .map_err(|_| format_err(&path, format!("line {}: more than 65536 groups", n + 1)))?;
        of_file.insert(file, index);
    }
    let split = |files: &[(PathBuf, u32)]| -> Result<Vec<u16>, DataError> {
        files
            .iter()
            .map(|(f, _)| {
                of_file
                    .get(f)
                    .copied()
                    .ok_or_else(|| format_err(&path, format!("has no group for {}", f.display())))
            })
            .collect()
    };
    let val = match &listing.val {
        Some(v) => split(v)?,
        None => Vec::new(),
    };
    Ok((names, [split(&listing.train)?, split(&listing.test)?, val]))
}

/// The folder's images at `size`x`size`, through the cache in `cache_dir`
/// (`<root>/.reusebench-cache` when absent), with their groups when
/// `groups` names a groups file.
pub fn load_image_folder(
    root: &Path,
    (train, test, val): (&Path, &Path, Option<&Path>),
    size: usize,
    normalization: Normalization,
    cache_dir: Option<&Path>,
    groups: Option<&Path>,
) -> Result<TrainTest, DataError> {
    if size == 0 || size > 1024 {
        return Err(DataError::Config(format!(
            "image-folder image_size must be in 1..=1024, got {size}"
        )));
    }
    let listing = list(root, train, test, val)?;
    let grouped = groups.map(|g| read_groups(root, g, &listing)).transpose()?;
    let folder = crate::tiny_imagenet::cache_folder(root, cache_dir);
    let cache = folder.join(format!(
        "image-folder-{size}px-{:016x}.bin",
        fingerprint(&listing, size)?
    ));
    let parts = match read_cache(&cache, size, listing.val.is_some()) {
        Some(parts) => parts,
        None => {
            let decode = |files: &[(PathBuf, u32)]| decode_files(files, size);
            let parts = (
                decode(&listing.train)?,
                decode(&listing.test)?,
                listing.val.as_deref().map(decode).transpose()?,
            );
            // A cache that cannot be written (read-only data) is skipped.
            let _ = write_cache(&cache, &parts);
            parts
        }
    };
    let (mut train, mut test, mut validation) = parts;
    let mut group_names = Vec::new();
    if let Some((names, [tr, te, va])) = grouped {
        group_names = names;
        train.groups = tr;
        test.groups = te;
        if let Some(v) = validation.as_mut() {
            v.groups = va;
        }
    }
    Ok(TrainTest {
        name: "image-folder".into(),
        num_classes: listing.classes.len(),
        class_names: listing.classes,
        train,
        test,
        validation,
        normalization,
        group_names,
    })
}

type Parts = (ImageSet, ImageSet, Option<ImageSet>);

fn read_cache(path: &Path, size: usize, with_val: bool) -> Option<Parts> {
    let mut r = std::io::BufReader::new(std::fs::File::open(path).ok()?);
    let mut magic = [0u8; 8];
    r.read_exact(&mut magic).ok()?;
    if &magic != CACHE_MAGIC {
        return None;
    }
    let train = read_set(&mut r, size).ok()?;
    let test = read_set(&mut r, size).ok()?;
    let val = if with_val {
        Some(read_set(&mut r, size).ok()?)
    } else {
        None
    };
    Some((train, test, val))
}

fn write_cache(path: &Path, (train, test, val): &Parts) -> std::io::Result<()> {
    std::fs::create_dir_all(path.parent().unwrap_or(Path::new(".")))?;
    let tmp = path.with_extension("tmp");
    let mut w = std::io::BufWriter::new(std::fs::File::create(&tmp)?);
    w.write_all(CACHE_MAGIC)?;
    for set in [Some(train), Some(test), val.as_ref()]
        .into_iter()
        .flatten()
    {
        write_set(&mut w, set)?;
    }
    w.flush()?;
    drop(w);
    std::fs::rename(&tmp, path)
}

/// The groups file [`write_image_folder_fixture`] writes.
pub const FIXTURE_GROUPS: &str = "groups.csv";

/// Writes a small image folder: `classes` folders per split, `per_class`
/// images in each (PNG, JPEG and WebP in turn), every image a flat colour
/// that encodes its class; `with_val` adds a `val/` split. Also a groups
/// file, [`FIXTURE_GROUPS`]: image k of class c is in group `class_c-a`
/// for even k and `class_c-b` for odd k (a class × attribute split, as
/// Waterbirds' groups).
pub fn write_image_folder_fixture(
    root: &Path,
    classes: usize,
    per_class: usize,
    with_val: bool,
) -> Result<(), DataError> {
    let splits: &[&str] = if with_val {
        &["train", "test", "val"]
    } else {
        &["train", "test"]
    };
    let mut groups = String::from("file,group\n");
    for split in splits {
        for c in 0..classes {
            let dir = root.join(split).join(format!("class_{c}"));
            std::fs::create_dir_all(&dir).map_err(|e| DataError::io(&dir, e))?;
            let v = (c * 255 / classes.max(1)) as u8;
            for k in 0..per_class {
                let img =
                    image::RgbImage::from_pixel(20, 20, image::Rgb([v, 255 - v, (k * 17) as u8]));
                let (name, format) = match k % 3 {
                    0 => (format!("{k}.png"), image::ImageFormat::Png),
                    1 => (format!("{k}.jpg"), image::ImageFormat::Jpeg),
                    // Lossless, as the image crate encodes WebP.
                    _ => (format!("{k}.webp"), image::ImageFormat::WebP),
                };
                let path = dir.join(&name);
                image::DynamicImage::ImageRgb8(img)
                    .save_with_format(&path, format)
                    .map_err(|e| format_err(&path, e.to_string()))?;
                let attribute = if k % 2 == 0 { "a" } else { "b" };
                groups.push_str(&format!("{split}/class_{c}/{name},class_{c}-{attribute}\n"));
            }
        }
    }
    let path = root.join(FIXTURE_GROUPS);
    std::fs::write(&path, groups).map_err(|e| DataError::io(&path, e))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(root: &Path, val: Option<&Path>) -> Result<TrainTest, DataError> {
        load_image_folder(
            root,
            (Path::new("train"), Path::new("test"), val),
            16,
            Normalization::IMAGENET,
            Some(&root.join("cache")),
            None,
        )
    }

    #[test]
    fn groups_come_from_the_groups_file_and_its_mistakes_name_the_line() {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path();
        write_image_folder_fixture(root, 2, 4, false).unwrap();
        let load_groups = || {
            load_image_folder(
                root,
                (Path::new("train"), Path::new("test"), None),
                8,
                Normalization::IMAGENET,
                Some(&root.join("cache")),
                Some(Path::new(FIXTURE_GROUPS)),
            )
        };
        let data = load_groups().unwrap();
        assert_eq!(
            data.group_names,
            ["class_0-a", "class_0-b", "class_1-a", "class_1-b"]
        );
        // Images 0 and 2 of each class are `a`, 1 and 3 `b`; the listing
        // is in file-name order, so the groups follow the class.
        assert_eq!(data.test.groups, [0, 1, 0, 1, 2, 3, 2, 3]);
        let groups = root.join(FIXTURE_GROUPS);
        let text = std::fs::read_to_string(&groups).unwrap();
        std::fs::write(&groups, text.replace("test/class_1/3.png,class_1-b\n", "")).unwrap();
        let err = load_groups().unwrap_err().to_string();
        assert!(
            err.contains("groups.csv") && err.contains("no group for") && err.contains("3.png"),
            "{err}"
        );
        std::fs::write(&groups, format!("{text}test/class_1/9.png,class_1-a\n")).unwrap();
        let err = load_groups().unwrap_err().to_string();
        assert!(
            err.contains("line 18") && err.contains("9.png") && err.contains("does not exist"),
            "{err}"
        );
        std::fs::write(&groups, format!("{text}just-a-file\n")).unwrap();
        let err = load_groups().unwrap_err().to_string();
        assert!(
            err.contains("line 18") && err.contains("expected `file,group`"),
            "{err}"
        );
    }

    #[test]
    fn reads_every_split_with_labels_from_the_folders() {
        let tmp = tempfile::tempdir().unwrap();
        write_image_folder_fixture(tmp.path(), 3, 4, true).unwrap();
        let data = load(tmp.path(), Some(Path::new("val"))).unwrap();
        assert_eq!(data.class_names, ["class_0", "class_1", "class_2"]);
        assert_eq!((data.train.len(), data.test.len()), (12, 12));
        assert_eq!(data.validation.as_ref().map(ImageSet::len), Some(12));
        // The red channel encodes the class, PNG, JPEG and WebP alike.
        let webp = std::fs::read_dir(tmp.path().join("train/class_1"))
            .unwrap()
            .filter(|e| {
                e.as_ref()
                    .unwrap()
                    .path()
                    .extension()
                    .is_some_and(|x| x == "webp")
            })
            .count();
        assert_eq!(webp, 1, "the fixture holds a WebP image per class");
        for i in 0..data.train.len() {
            let red = data.train.image(i)[0] as i32;
            let want = (data.train.labels[i] as usize * 255 / 3) as i32;
            assert!(
                (red - want).abs() <= 3,
                "image {i}: red {red}, class {}",
                data.train.labels[i]
            );
        }
        // Cached: the second load reads the same images back.
        let again = load(tmp.path(), Some(Path::new("val"))).unwrap();
        assert_eq!(again.train.pixels, data.train.pixels);
        assert!(std::fs::read_dir(tmp.path().join("cache")).unwrap().count() == 1);
        // The validation folder is the dataset's own split for the hold-out.
        let held = crate::held_out::hold_out(
            data,
            &crate::held_out::Validation::default(),
            crate::held_out::Split::Validation,
        )
        .unwrap();
        assert_eq!(
            (held.train.len(), held.test.len()),
            (12, 12),
            "no training image held out"
        );
    }

    #[test]
    fn problems_name_the_path() {
        let tmp = tempfile::tempdir().unwrap();
        write_image_folder_fixture(tmp.path(), 2, 2, false).unwrap();
        let root = tmp.path();
        // A non-image file in a class folder.
        let stray = root.join("train/class_1/notes.txt");
        std::fs::write(&stray, "x").unwrap();
        let err = load(root, None).unwrap_err().to_string();
        assert!(
            err.contains("notes.txt") && err.contains("not an image file"),
            "{err}"
        );
        std::fs::remove_file(&stray).unwrap();
        // An empty class folder.
        std::fs::create_dir_all(root.join("test/class_2")).unwrap();
        std::fs::create_dir_all(root.join("train/class_2")).unwrap();
        let err = load(root, None).unwrap_err().to_string();
        assert!(
            err.contains("class_2") && err.contains("empty class folder"),
            "{err}"
        );
        std::fs::remove_dir(root.join("train/class_2")).unwrap();
        // A class the training split lacks.
        let err = load(root, None).unwrap_err().to_string();
        assert!(
            err.contains("test") && err.contains("not in training [\"class_2\"]"),
            "{err}"
        );
        std::fs::remove_dir(root.join("test/class_2")).unwrap();
        assert!(load(root, None).is_ok());
    }
}
