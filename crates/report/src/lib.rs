//! Reports over a results folder: polars aggregates the rows of every done
//! cell over seeds (mean ± std, n), point by point where rows have
//! coordinates, into Markdown and CSV tables; the raw rows go to Parquet
//! with a column per grid axis and per coordinate; plotters draws the
//! figures (SVG always, PNG where the bitmap backend renders).
//!
//! Every experiment gets the generic parts (its scalar table, tables of its
//! coordinate metrics, its training curves); a protocol adds its own tables
//! and figures through a view (`views/`).
//!
//! This crate reads the store's files (`cells/*/status.json`, `rows.json`)
//! and never links the training crates, so report work does not rebuild them.

mod aggregate;
mod error;
mod html;
mod plot;
mod rows;
mod seeds;
pub mod stats;
mod tuning;
pub mod views;

use crate::rows::Loaded;
use std::path::{Path, PathBuf};

pub use aggregate::{Benchmark, Summary, SummaryRow};
pub use error::ReportError;
pub use html::write_html;
pub use reusebench_results::StoredRow;
pub use rows::{FailedCell, TunedCell, load_results};

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
/// `rows.parquet` and `plots/` into it (and `comparison.md` where there are
/// continual experiments).
pub fn write_report(results: &Path) -> Result<ReportFiles, ReportError> {
    let views = views::builtin();
    let loaded = load_results(results)?;
    let mut frame = rows::to_frame(&loaded.rows, &loaded.axis_columns, &loaded.coord_columns)?;
    let summary = aggregate::summarize(&frame, &loaded.axis_columns, &loaded.coord_columns)?;

    let parquet = results.join("rows.parquet");
    aggregate::write_parquet(&mut frame, &parquet)?;
    let csv = results.join("summary.csv");
    aggregate::write_csv(&summary, &csv)?;

    let mut md = aggregate::markdown_header(
        loaded.cells_done,
        loaded.failed.len(),
        loaded.not_in_grid.len(),
        &loaded.kept_stale,
    );
    let plots_dir = results.join("plots");
    let mut figures = plot::Figures::new(&plots_dir)?;
    for (exp, protocol) in aggregate::experiments(&summary) {
        let view = views::view_of(&views, &protocol);
        md.push_str(&format!("\n## {exp} ({protocol})\n\n"));
        md.push_str(&seeds::seeds_line(results, &loaded.rows, &exp));
        md.push_str(&aggregate::scalar_table(&summary, &exp));
        if let Some(baseline) = loaded.baselines.get(&exp) {
            let paired =
                aggregate::paired_results(&loaded.rows, &exp, baseline, &loaded.axis_columns);
            md.push_str(&aggregate::paired_markdown(&summary, &exp, &paired));
        }
        if !view.is_some_and(|v| v.shows_coordinates) {
            md.push_str(&aggregate::coordinate_tables(&summary, &exp));
        }
        let exp_rows: Vec<&StoredRow> =
            loaded.rows.iter().filter(|r| r.experiment == exp).collect();
        let experiment = views::Experiment {
            name: &exp,
            rows: &exp_rows,
            summary: &summary,
            baseline: loaded.baselines.get(&exp).map(String::as_str),
        };
        if let Some(v) = view {
            md.push_str(&v.view.markdown(&experiment));
        }
        views::draw_curves(&exp_rows, &exp, &loaded.axis_columns, &mut figures)?;
        if let Some(v) = view {
            v.view.figures(&experiment, &mut figures)?;
        }
        md.push_str(&tuning::markdown(&loaded.tuned, &exp));
        tuning::figures(&loaded.tuned, &exp, &mut figures)?;
    }
    md.push_str(&aggregate::failed_markdown(&loaded.failed));
    let markdown = results.join("summary.md");
    aggregate::write_atomic(&markdown, md.as_bytes())?;

    let continual = continual_experiments(&summary);
    if !continual.is_empty() {
        let benchmarks: Vec<Benchmark> = continual
            .iter()
            .map(|e| benchmark(e.clone(), &summary, &loaded, e))
            .collect();
        let path = results.join("comparison.md");
        let text = aggregate::comparison_markdown(&benchmarks);
        aggregate::write_atomic(&path, text.as_bytes())?;
    }
    Ok(ReportFiles {
        markdown,
        csv,
        parquet,
        plots: figures.written,
        png_skipped: figures.png_problem,
        cells_done: loaded.cells_done,
        cells_failed: loaded.failed.len(),
    })
}

/// Continual experiment `e` of one results folder as a column group of
/// the comparison table.
fn benchmark<'a>(label: String, summary: &'a Summary, loaded: &Loaded, e: &str) -> Benchmark<'a> {
    let exp_rows: Vec<&StoredRow> = loaded.rows.iter().filter(|r| r.experiment == e).collect();
    let baseline = loaded.baselines.get(e);
    let experiment = views::Experiment {
        name: e,
        rows: &exp_rows,
        summary,
        baseline: baseline.map(String::as_str),
    };
    Benchmark {
        label,
        summary,
        experiment: e.to_string(),
        paired: baseline
            .map(|b| aggregate::paired_results(&loaded.rows, e, b, &loaded.axis_columns)),
        baseline: baseline.cloned(),
        adaptation: views::accuracy_by_shots(&experiment),
    }
}

fn continual_experiments(summary: &Summary) -> Vec<String> {
    aggregate::experiments(summary)
        .into_iter()
        .filter(|(_, p)| p == "continual")
        .map(|(e, _)| e)
        .collect()
}

/// `reusebench compare`: one comparison table over several results folders
/// (one benchmark each, or one per continual experiment in a folder that
/// has several), written to `output`.
pub fn write_comparison(folders: &[PathBuf], output: &Path) -> Result<(), ReportError> {
    let mut summaries = Vec::new();
    for folder in folders {
        let loaded = load_results(folder)?;
        let frame = rows::to_frame(&loaded.rows, &loaded.axis_columns, &loaded.coord_columns)?;
        let name = folder
            .file_name()
            .map(|n| n.to_string_lossy().to_string())
            .unwrap_or_else(|| folder.display().to_string());
        let summary = aggregate::summarize(&frame, &loaded.axis_columns, &loaded.coord_columns)?;
        summaries.push((name, summary, loaded));
    }
    let mut benchmarks = Vec::new();
    for (name, summary, loaded) in &summaries {
        let experiments = continual_experiments(summary);
        for e in &experiments {
            let label = if experiments.len() > 1 {
                format!("{name}/{e}")
            } else {
                name.clone()
            };
            benchmarks.push(benchmark(label, summary, loaded, e));
        }
    }
    let text = aggregate::comparison_markdown(&benchmarks);
    aggregate::write_atomic(output, text.as_bytes())
}
