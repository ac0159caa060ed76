//! Reports over a results folder: polars aggregates the rows of every done
//! cell over seeds (mean ± std, n) into Markdown and CSV tables, keeps the
//! raw rows in Parquet, and plotters draws the figures (SVG always, PNG
//! where the bitmap backend renders).
//!
//! This crate reads the store's files (`cells/*/status.json`, `rows.json`)
//! and never links the training crates, so report work does not rebuild them.

mod aggregate;
mod error;
mod plots;
mod rows;

use std::path::{Path, PathBuf};

pub use aggregate::{Benchmark, Summary, SummaryRow};
pub use error::ReportError;
pub use rows::{FailedCell, StoredRow, load_results};

/// What `write_report` produced.
#[derive(Debug, Clone)]
pub struct ReportFiles {
    pub markdown: PathBuf,
    pub csv: PathBuf,
    pub parquet: PathBuf,
    pub plots: Vec<PathBuf>,
    pub png_skipped: Option<String>,
    pub cells_done: usize,
    pub cells_failed: usize,
}

/// Aggregates `results` and writes `summary.md`, `summary.csv`,
/// `rows.parquet` and `plots/` into it.
pub fn write_report(results: &Path) -> Result<ReportFiles, ReportError> {
    let loaded = load_results(results)?;
    let mut frame = rows::to_frame(&loaded.rows, &loaded.axis_columns)?;
    let summary = aggregate::summarize(&frame, &loaded.axis_columns)?;

    let parquet = results.join("rows.parquet");
    aggregate::write_parquet(&mut frame, &parquet)?;
    let csv = results.join("summary.csv");
    aggregate::write_csv(&summary, &csv)?;
    let markdown = results.join("summary.md");
    let md = aggregate::markdown(
        &summary,
        &loaded.failed,
        loaded.cells_done,
        loaded.stale.len(),
    );
    std::fs::write(&markdown, md).map_err(|e| ReportError::io(&markdown, e))?;
    let continual = continual_experiments(&summary);
    if !continual.is_empty() {
        let benchmarks: Vec<Benchmark> = continual
            .iter()
            .map(|e| Benchmark {
                label: e.clone(),
                summary: &summary,
                experiment: e.clone(),
            })
            .collect();
        let path = results.join("comparison.md");
        let text = aggregate::comparison_markdown(&benchmarks);
        std::fs::write(&path, text).map_err(|e| ReportError::io(&path, e))?;
    }
    let (plots, png_skipped) =
        plots::draw_all(&loaded.rows, &loaded.axis_columns, &results.join("plots"))?;
    Ok(ReportFiles {
        markdown,
        csv,
        parquet,
        plots,
        png_skipped,
        cells_done: loaded.cells_done,
        cells_failed: loaded.failed.len(),
    })
}

fn continual_experiments(summary: &Summary) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for r in summary.rows.iter().filter(|r| r.protocol == "continual") {
        if !out.contains(&r.experiment) {
            out.push(r.experiment.clone());
        }
    }
    out
}

/// `reusebench compare`: one comparison table over several results folders
/// (one benchmark each, or one per continual experiment in a folder that
/// has several), written to `output`.
pub fn write_comparison(folders: &[PathBuf], output: &Path) -> Result<(), ReportError> {
    let mut summaries = Vec::new();
    for folder in folders {
        let loaded = load_results(folder)?;
        let frame = rows::to_frame(&loaded.rows, &loaded.axis_columns)?;
        let name = folder
            .file_name()
            .map(|n| n.to_string_lossy().to_string())
            .unwrap_or_else(|| folder.display().to_string());
        summaries.push((name, aggregate::summarize(&frame, &loaded.axis_columns)?));
    }
    let mut benchmarks = Vec::new();
    for (name, summary) in &summaries {
        let experiments = continual_experiments(summary);
        for e in &experiments {
            benchmarks.push(Benchmark {
                label: if experiments.len() > 1 {
                    format!("{name}/{e}")
                } else {
                    name.clone()
                },
                summary,
                experiment: e.clone(),
            });
        }
    }
    let text = aggregate::comparison_markdown(&benchmarks);
    std::fs::write(output, text).map_err(|e| ReportError::io(output, e))
}
