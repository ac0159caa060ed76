//! A cell's rows as they are made: appended to `cells/<cell>/live.jsonl`
//! (one JSON row a line, flushed, so that a crash keeps them and `watch`
//! reads them) and, with TensorBoard on, to the cell's event file. The
//! rows the cell ends with (`rows.json`) stay the result; these are for
//! watching.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use reusebench_core::train::LiveRows;
use reusebench_results::MetricRow;

use crate::cell::Cell;
use crate::error::RunnerError;
use crate::tensorboard::EventWriter;

/// The file in a cell's folder that holds its live rows.
pub const LIVE_FILE: &str = "live.jsonl";

pub struct Live {
    file: Mutex<BufWriter<File>>,
    tensorboard: Option<Mutex<EventWriter>>,
}

/// Where a cell's event file goes: `tb/<experiment>/<label> seed=<s>
/// (<id>)` (the seed once) under the results folder, so that TensorBoard names each run by
/// what sets it apart.
pub fn tensorboard_dir(results: &Path, cell: &Cell) -> PathBuf {
    let label = cell.label.replace(['/', '\\', ':'], "_");
    let seed = format!("seed={}", cell.config.seed());
    let name = match label.as_str() {
        "" => seed,
        l if l.contains("seed=") => l.to_string(),
        l => format!("{l} {seed}"),
    };
    results
        .join("tb")
        .join(&cell.experiment)
        .join(format!("{name} ({})", cell.id))
}

impl Live {
    /// Starts the cell's live rows afresh (an earlier attempt's are
    /// removed), with an event file in `tensorboard` when given.
    pub fn start(dir: &Path, tensorboard: Option<&Path>) -> Result<Self, RunnerError> {
        std::fs::create_dir_all(dir).map_err(|e| RunnerError::io(dir, e))?;
        let path = dir.join(LIVE_FILE);
        let file = File::create(&path).map_err(|e| RunnerError::io(&path, e))?;
        let tensorboard = match tensorboard {
            Some(tb) => {
                let _ = std::fs::remove_dir_all(tb);
                Some(Mutex::new(EventWriter::create(tb)?))
            }
            None => None,
        };
        Ok(Self {
            file: Mutex::new(BufWriter::new(file)),
            tensorboard,
        })
    }

    /// The rows a protocol returned that were not sent live (its summary
    /// rows): TensorBoard gets them at the end.
    pub fn finish(&self, rows: &[MetricRow], sent: usize) {
        if let Some(tb) = &self.tensorboard {
            let mut tb = tb.lock().expect("event file");
            for row in &rows[..rows.len().saturating_sub(sent)] {
                let _ = tb.row(row);
            }
        }
    }
}

impl LiveRows for Live {
    fn row(&self, row: &MetricRow) {
        // Best effort: rows.json at the cell's end is the result.
        if let Ok(line) = serde_json::to_string(row) {
            let mut f = self.file.lock().expect("live file");
            let _ = writeln!(f, "{line}").and_then(|_| f.flush());
        }
        if let Some(tb) = &self.tensorboard {
            let _ = tb.lock().expect("event file").row(row);
        }
    }
}

/// The last `n` live rows of the cell in `dir`, oldest first.
pub fn last_rows(dir: &Path, n: usize) -> Vec<MetricRow> {
    let Ok(text) = std::fs::read_to_string(dir.join(LIVE_FILE)) else {
        return Vec::new();
    };
    let rows: Vec<MetricRow> = text
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect();
    rows[rows.len().saturating_sub(n)..].to_vec()
}
