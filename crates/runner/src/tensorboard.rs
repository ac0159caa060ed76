//! TensorBoard event files, written without TensorFlow: the TFRecord
//! framing (length, masked CRC-32C of the length, an `Event` protocol
//! buffer, masked CRC-32C of it) and the three fields a scalar needs,
//! encoded by hand. W&B and MLflow import these files too.
//!
//! `Event { wall_time: double = 1; step: int64 = 2; file_version: string =
//! 3; summary: Summary = 5 }`, `Summary { repeated Value value = 1 }`,
//! `Value { tag: string = 1; simple_value: float = 2 }`.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use reusebench_results::{Coord, MetricRow, names};

use crate::error::RunnerError;

/// CRC-32C (Castagnoli), bitwise: event files are small.
fn crc32c(bytes: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &b in bytes {
        crc ^= u32::from(b);
        for _ in 0..8 {
            crc = if crc & 1 == 1 {
                (crc >> 1) ^ 0x82F6_3B78
            } else {
                crc >> 1
            };
        }
    }
    !crc
}

/// TFRecord's masked CRC.
fn masked(crc: u32) -> u32 {
    crc.rotate_right(15).wrapping_add(0xa282_ead8)
}

fn varint(mut v: u64, out: &mut Vec<u8>) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

/// A length-delimited field.
fn bytes_field(field: u64, bytes: &[u8], out: &mut Vec<u8>) {
    varint(field << 3 | 2, out);
    varint(bytes.len() as u64, out);
    out.extend_from_slice(bytes);
}

fn event(wall_time: f64, step: i64, body: impl FnOnce(&mut Vec<u8>)) -> Vec<u8> {
    let mut e = Vec::new();
    varint(1 << 3 | 1, &mut e);
    e.extend_from_slice(&wall_time.to_le_bytes());
    varint(2 << 3, &mut e);
    varint(step as u64, &mut e);
    body(&mut e);
    e
}

/// One run's event file (`events.out.tfevents.<time>.reusebench`).
pub struct EventWriter {
    file: BufWriter<File>,
    path: PathBuf,
}

impl EventWriter {
    /// A new event file in `dir` (created), starting with the version event.
    pub fn create(dir: &Path) -> Result<Self, RunnerError> {
        std::fs::create_dir_all(dir).map_err(|e| RunnerError::io(dir, e))?;
        let now = wall_time();
        let path = dir.join(format!("events.out.tfevents.{}.reusebench", now as u64));
        let file = File::create(&path).map_err(|e| RunnerError::io(&path, e))?;
        let mut w = Self {
            file: BufWriter::new(file),
            path,
        };
        let version = event(now, 0, |e| bytes_field(3, b"brain.Event:2", e));
        w.record(&version)?;
        Ok(w)
    }

    fn record(&mut self, data: &[u8]) -> Result<(), RunnerError> {
        let len = (data.len() as u64).to_le_bytes();
        let io = |e| RunnerError::io(&self.path, e);
        let mut out = Vec::with_capacity(data.len() + 16);
        out.extend_from_slice(&len);
        out.extend_from_slice(&masked(crc32c(&len)).to_le_bytes());
        out.extend_from_slice(data);
        out.extend_from_slice(&masked(crc32c(data)).to_le_bytes());
        self.file.write_all(&out).map_err(io)?;
        // A crash keeps what was written: flushed per record.
        self.file
            .flush()
            .map_err(|e| RunnerError::io(&self.path, e))
    }

    /// One scalar `tag` at `step`.
    pub fn scalar(&mut self, tag: &str, step: i64, value: f32) -> Result<(), RunnerError> {
        let mut v = Vec::new();
        bytes_field(1, tag.as_bytes(), &mut v);
        varint(2 << 3 | 5, &mut v);
        v.extend_from_slice(&value.to_le_bytes());
        let mut summary = Vec::new();
        bytes_field(1, &v, &mut summary);
        let e = event(wall_time(), step, |e| bytes_field(5, &summary, e));
        self.record(&e)
    }

    /// A metric row as a scalar: the step is its epoch, round or task
    /// coordinate (0 for a cell's summary rows), the tag its metric and
    /// the other coordinates (`curve_loss/stage=pretrain`).
    pub fn row(&mut self, row: &MetricRow) -> Result<(), RunnerError> {
        let (tag, step) = tag_and_step(row);
        self.scalar(&tag, step, row.value as f32)
    }
}

fn wall_time() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

/// The coordinates that count steps, first found wins.
const STEPS: [&str; 4] = [names::EPOCH, names::ROUND, names::AFTER_TASK, names::K];

/// A row's TensorBoard tag and step.
pub fn tag_and_step(row: &MetricRow) -> (String, i64) {
    let mut step = 0i64;
    let mut step_name = None;
    for name in STEPS {
        if let Some(Coord::Int(v)) = row.coords.get(name) {
            step = *v;
            step_name = Some(name);
            break;
        }
    }
    let mut tag = row.metric.clone();
    for (k, v) in row.coords.iter() {
        if Some(k) != step_name {
            tag.push_str(&format!("/{k}={v}"));
        }
    }
    (tag, step)
}

/// The scalars of an event file, as (tag, step, value), checking every
/// record's CRCs: what TensorBoard would read.
pub fn read_scalars(path: &Path) -> Result<Vec<(String, i64, f32)>, String> {
    let bytes = std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let mut out = Vec::new();
    let mut at = 0;
    while at < bytes.len() {
        let take = |from: usize, n: usize| bytes.get(from..from + n).ok_or("a record is cut short");
        let len_bytes = take(at, 8)?;
        let len = u64::from_le_bytes(len_bytes.try_into().expect("8")) as usize;
        let len_crc = u32::from_le_bytes(take(at + 8, 4)?.try_into().expect("4"));
        if len_crc != masked(crc32c(len_bytes)) {
            return Err(format!(
                "record at byte {at}: the length's CRC does not match"
            ));
        }
        let data = take(at + 12, len)?;
        let data_crc = u32::from_le_bytes(take(at + 12 + len, 4)?.try_into().expect("4"));
        if data_crc != masked(crc32c(data)) {
            return Err(format!(
                "record at byte {at}: the data's CRC does not match"
            ));
        }
        out.extend(decode_event(data)?);
        at += 16 + len;
    }
    Ok(out)
}

/// Reads a varint at `*at`.
fn read_varint(b: &[u8], at: &mut usize) -> Result<u64, String> {
    let mut v = 0u64;
    for shift in (0..64).step_by(7) {
        let byte = *b.get(*at).ok_or("a varint is cut short")?;
        *at += 1;
        v |= u64::from(byte & 0x7f) << shift;
        if byte < 0x80 {
            return Ok(v);
        }
    }
    Err("a varint is too long".into())
}

/// A message's field: (field number, wire type, payload).
type Field<'a> = (u64, u64, &'a [u8]);

/// The fields of a message.
fn fields(b: &[u8]) -> Result<Vec<Field<'_>>, String> {
    let mut out = Vec::new();
    let mut at = 0;
    while at < b.len() {
        let key = read_varint(b, &mut at)?;
        let (field, wire) = (key >> 3, key & 7);
        let start = at;
        let end = match wire {
            0 => {
                read_varint(b, &mut at)?;
                at
            }
            1 => at + 8,
            2 => {
                let n = read_varint(b, &mut at)? as usize;
                at + n
            }
            5 => at + 4,
            w => return Err(format!("wire type {w} is not used by scalar events")),
        };
        let payload_start = if wire == 2 { at } else { start };
        out.push((
            field,
            wire,
            b.get(payload_start..end).ok_or("a field is cut short")?,
        ));
        at = end;
    }
    Ok(out)
}

fn decode_event(b: &[u8]) -> Result<Vec<(String, i64, f32)>, String> {
    let mut step = 0i64;
    let mut values = Vec::new();
    for (field, wire, payload) in fields(b)? {
        match (field, wire) {
            (2, 0) => step = read_varint(payload, &mut 0)? as i64,
            (5, 2) => {
                for (f, _, value) in fields(payload)? {
                    if f != 1 {
                        continue;
                    }
                    let (mut tag, mut simple) = (String::new(), None);
                    for (vf, vw, p) in fields(value)? {
                        match (vf, vw) {
                            (1, 2) => tag = String::from_utf8_lossy(p).into_owned(),
                            (2, 5) => {
                                simple =
                                    Some(f32::from_le_bytes(p.try_into().map_err(|_| "a float")?))
                            }
                            _ => {}
                        }
                    }
                    if let Some(v) = simple {
                        values.push((tag, v));
                    }
                }
            }
            _ => {}
        }
    }
    Ok(values.into_iter().map(|(t, v)| (t, step, v)).collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use reusebench_results::Coords;

    #[test]
    fn crc32c_matches_the_standard_check_value() {
        // The CRC-32C of "123456789" (RFC 3720's check value).
        assert_eq!(crc32c(b"123456789"), 0xE306_9283);
    }

    #[test]
    fn scalars_read_back_with_their_tags_and_steps() {
        let tmp = tempfile::tempdir().unwrap();
        let mut w = EventWriter::create(tmp.path()).unwrap();
        let at = Coords::new()
            .with(names::STAGE, "pretrain")
            .with(names::EPOCH, 3usize);
        w.row(&MetricRow::at(names::CURVE_LOSS, 0.25, at)).unwrap();
        w.row(&MetricRow::scalar("test_acc", 61.5)).unwrap();
        let path = std::fs::read_dir(tmp.path())
            .unwrap()
            .next()
            .unwrap()
            .unwrap()
            .path();
        let got = read_scalars(&path).unwrap();
        assert_eq!(
            got,
            vec![
                ("curve_loss/stage=pretrain".to_string(), 3, 0.25),
                ("test_acc".to_string(), 0, 61.5)
            ]
        );
        // A flipped byte is caught by the CRC.
        let mut bytes = std::fs::read(&path).unwrap();
        let n = bytes.len();
        bytes[n - 6] ^= 1;
        std::fs::write(&path, bytes).unwrap();
        assert!(read_scalars(&path).unwrap_err().contains("CRC"));
    }
}
