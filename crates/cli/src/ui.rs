//! Progress display: bars on a terminal, plain log lines otherwise.

use std::io::IsTerminal;
use std::sync::Mutex;
use std::time::Instant;

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use reusebench_core::Progress;
use reusebench_runner::{Cell, CellStatus, GridObserver, State};

pub struct Ui {
    bars: Option<(MultiProgress, ProgressBar, ProgressBar)>,
    stage: Mutex<StageLog>,
}

#[derive(Default)]
struct StageLog {
    name: String,
    loss_sum: f64,
    batches: usize,
    started: Option<Instant>,
}

impl Ui {
    pub fn new(cells: usize) -> Self {
        let bars = std::io::stdout().is_terminal().then(|| {
            let multi = MultiProgress::with_draw_target(ProgressDrawTarget::stdout());
            let grid = multi.add(ProgressBar::new(cells as u64));
            grid.set_style(
                ProgressStyle::with_template(
                    "grid  [{bar:30.cyan/blue}] {pos}/{len} cells  {elapsed_precise}  {msg}",
                )
                .expect("template"),
            );
            let cell = multi.add(ProgressBar::new(0));
            cell.set_style(
                ProgressStyle::with_template(
                    "cell  [{bar:30.green/white}] {pos}/{len}  {msg}  eta {eta}",
                )
                .expect("template"),
            );
            (multi, grid, cell)
        });
        Self {
            bars,
            stage: Mutex::new(StageLog::default()),
        }
    }

    pub fn line(&self, msg: &str) {
        match &self.bars {
            Some((multi, _, _)) => {
                let _ = multi.println(msg);
            }
            None => println!("{msg}"),
        }
    }

    pub fn finish(&self) {
        if let Some((_, grid, cell)) = &self.bars {
            cell.finish_and_clear();
            grid.finish();
        }
    }
}

/// `continual [1a2b3c] der++ buffer_size=8 seed=1`: the cell by what sets it apart.
fn describe(cell: &Cell) -> String {
    format!("{} [{}] {}", cell.experiment, cell.id, cell.label)
        .trim_end()
        .to_string()
}

impl GridObserver for Ui {
    fn cell_started(&self, index: usize, total: usize, cell: &Cell) {
        if let Some((_, grid, _)) = &self.bars {
            grid.set_message(describe(cell));
        }
        self.line(&format!("[{}/{total}] start {}", index + 1, describe(cell)));
    }

    fn cell_skipped(&self, index: usize, total: usize, cell: &Cell) {
        if let Some((_, grid, _)) = &self.bars {
            grid.inc(1);
        }
        self.line(&format!(
            "[{}/{total}] done already, skipped {}",
            index + 1,
            describe(cell)
        ));
    }

    fn cell_finished(&self, index: usize, total: usize, cell: &Cell, status: &CellStatus) {
        crate::after_cell();
        if let Some((_, grid, _)) = &self.bars {
            grid.inc(1);
        }
        let what = match status.state {
            State::Done => "done".to_string(),
            _ => format!("FAILED: {}", status.reason.clone().unwrap_or_default()),
        };
        self.line(&format!(
            "[{}/{total}] {what} in {:.1}s {}",
            index + 1,
            status.seconds,
            describe(cell)
        ));
    }

    fn cell_elsewhere(&self, index: usize, total: usize, cell: &Cell, holder: &str) {
        if let Some((_, grid, _)) = &self.bars {
            grid.inc(1);
        }
        self.line(&format!(
            "[{}/{total}] claimed by another worker ({holder}), left to it: {}",
            index + 1,
            describe(cell)
        ));
    }

    fn cell_taken_over(&self, index: usize, total: usize, cell: &Cell, why: &str) {
        self.line(&format!(
            "[{}/{total}] {why}; running {}",
            index + 1,
            describe(cell)
        ));
    }

    fn progress(&self) -> &dyn Progress {
        self
    }
}

impl Progress for Ui {
    fn begin(&self, stage: &str, batches: usize) {
        let mut log = self.stage.lock().expect("ui lock");
        *log = StageLog {
            name: stage.to_string(),
            started: Some(Instant::now()),
            ..Default::default()
        };
        if let Some((_, _, cell)) = &self.bars {
            cell.reset();
            cell.set_length(batches as u64);
            cell.set_message(stage.to_string());
        }
    }

    fn batch(&self, loss: f32) {
        let mut log = self.stage.lock().expect("ui lock");
        log.loss_sum += loss as f64;
        log.batches += 1;
        if let Some((_, _, cell)) = &self.bars {
            cell.inc(1);
            cell.set_message(format!("{}  loss {loss:.3}", log.name));
        }
    }

    fn end(&self) {
        let log = self.stage.lock().expect("ui lock");
        if self.bars.is_none() {
            let secs = log
                .started
                .map(|s| s.elapsed().as_secs_f64())
                .unwrap_or(0.0);
            println!(
                "    {}: mean loss {:.4} over {} batches, {secs:.1}s",
                log.name,
                log.loss_sum / log.batches.max(1) as f64,
                log.batches
            );
        }
    }

    fn note(&self, message: &str) {
        self.line(&format!("    {message}"));
    }
}
