//! Image files (JPEG, PNG) decoded into the harness's layout: RGB (grayscale
//! and RGBA converted), optionally resized (bilinear), CHW `u8`. Shared by
//! the loaders of datasets stored as image files.

use std::path::{Path, PathBuf};

use crate::error::DataError;
use crate::image_set::ImageSet;

fn format_err(path: &Path, message: impl Into<String>) -> DataError {
    DataError::Format {
        path: path.to_path_buf(),
        message: message.into(),
    }
}

/// A file's size and modification time (ns since the epoch, 0 where the
/// file system keeps none): what a decoded-image cache's key covers, so
/// that a changed file rebuilds the cache.
pub(crate) fn file_stamp(path: &Path) -> Result<(u64, u128), DataError> {
    let meta = std::fs::metadata(path).map_err(|e| DataError::io(path, e))?;
    let mtime = meta
        .modified()
        .ok()
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    Ok((meta.len(), mtime))
}

/// A CHW `u8` image of `channels` (1 or 3) resized to `size`x`size`
/// (bilinear, as [`decode_rgb`] resizes), CHW.
pub fn resize_chw(
    src: &[u8],
    channels: usize,
    (height, width): (usize, usize),
    size: usize,
) -> Vec<u8> {
    let plane = height * width;
    let mut out = vec![0u8; channels * size * size];
    // Channel by channel as grey images: bilinear filtering is per channel.
    for c in 0..channels {
        let grey = image::GrayImage::from_raw(
            width as u32,
            height as u32,
            src[c * plane..(c + 1) * plane].to_vec(),
        )
        .expect("a CHW plane of height x width bytes");
        let resized = image::imageops::resize(
            &grey,
            size as u32,
            size as u32,
            image::imageops::FilterType::Triangle,
        );
        out[c * size * size..(c + 1) * size * size].copy_from_slice(resized.as_raw());
    }
    out
}

/// One image file as `size`x`size` RGB, CHW.
pub fn decode_rgb(path: &Path, size: usize) -> Result<Vec<u8>, DataError> {
    let img =
        image::open(path).map_err(|e| format_err(path, format!("cannot decode image: {e}")))?;
    let mut rgb = img.to_rgb8();
    if rgb.width() as usize != size || rgb.height() as usize != size {
        rgb = image::imageops::resize(
            &rgb,
            size as u32,
            size as u32,
            image::imageops::FilterType::Triangle,
        );
    }
    // HWC -> CHW
    let plane = size * size;
    let mut out = vec![0u8; 3 * plane];
    for (i, px) in rgb.pixels().enumerate() {
        for c in 0..3 {
            out[c * plane + i] = px.0[c];
        }
    }
    Ok(out)
}

/// Decodes `files` on all cores, keeping their order; labels come with them.
pub fn decode_files(files: &[(PathBuf, u32)], size: usize) -> Result<ImageSet, DataError> {
    let threads = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1)
        .max(1);
    let chunk = files.len().div_ceil(threads).max(1);
    let parts: Vec<Result<Vec<Vec<u8>>, DataError>> = std::thread::scope(|s| {
        let handles: Vec<_> = files
            .chunks(chunk)
            .map(|part| s.spawn(move || part.iter().map(|(p, _)| decode_rgb(p, size)).collect()))
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("decoder thread"))
            .collect()
    });
    let mut set = ImageSet::empty(3, size, size);
    let mut labels = files.iter().map(|(_, l)| *l);
    for part in parts {
        for img in part? {
            set.push(&img, labels.next().expect("one label per file"));
        }
    }
    Ok(set)
}
