//! Slurm array jobs for a grid: one sbatch script per experiment (stage),
//! each array task running one cell through `reusebench run --cell`, the
//! stages chained with `afterok`, and a report job at the end (`afterany`).
//! Only cells not done yet are submitted, so submitting again after a
//! cancelled array finishes the grid; the cells' claims keep a cell from
//! running twice if an old task still runs.

use std::path::{Path, PathBuf};

use crate::cell::FINAL_PHASE;
use crate::error::RunnerError;
use crate::grid::Grid;
use crate::store;

/// What `submit --slurm` asks of the cluster.
#[derive(Debug, Clone, Default)]
pub struct SlurmOptions {
    pub partition: Option<String>,
    pub time: Option<String>,
    /// Generic resources per task (`gpu:1`).
    pub gres: Option<String>,
    pub cpus_per_task: Option<u32>,
    pub mem: Option<String>,
    /// At most this many tasks of an array at once (`--array=...%N`).
    pub parallelism: Option<usize>,
    /// Free `#SBATCH` arguments, one per line (`--account=abc`).
    pub sbatch: Vec<String>,
    /// The `reusebench` binary the tasks run.
    pub binary: PathBuf,
    /// `--device` for the tasks (else the grid's device).
    pub device: Option<String>,
    /// `--set` overrides the tasks pass on.
    pub sets: Vec<String>,
    /// Where `{data}` points for the tasks (made absolute).
    pub data_root: Option<PathBuf>,
    /// Seconds before preemption or the time limit at which Slurm sends
    /// SIGUSR1 (`--signal=B:USR1@N`): the worker checkpoints its cell and
    /// leaves, releasing its claim, and the task requeues itself.
    pub grace: u32,
}

/// The default of [`SlurmOptions::grace`].
pub const DEFAULT_GRACE_SECS: u32 = 120;

/// One experiment's array job (one per phase of a `tune:` search: the
/// trials, each rung, the final runs).
#[derive(Debug, Clone)]
pub struct Stage {
    pub experiment: String,
    /// The job's name: the experiment's, with its phase where it is tuned.
    pub name: String,
    /// The previous stage is an earlier phase of the same search: this one
    /// starts once it has ended, whether or not every trial succeeded (a
    /// failed trial is left out of the ranking).
    pub after_search: bool,
    /// The cell folders its tasks run, by task index.
    pub cells: Vec<String>,
    pub script: String,
}

/// Single-quoted for bash.
pub fn quote(s: &str) -> String {
    if !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_./:=,%+@".contains(c))
    {
        return s.to_string();
    }
    format!("'{}'", s.replace('\'', r"'\''"))
}

fn absolute(p: &Path) -> Result<PathBuf, RunnerError> {
    std::path::absolute(p).map_err(|e| RunnerError::io(p, e))
}

/// The `#SBATCH` lines every job shares.
fn resource_lines(o: &SlurmOptions, with_gres: bool) -> Vec<String> {
    let mut lines = Vec::new();
    if let Some(p) = &o.partition {
        lines.push(format!("--partition={p}"));
    }
    if let Some(t) = &o.time {
        lines.push(format!("--time={t}"));
    }
    if with_gres && let Some(g) = &o.gres {
        lines.push(format!("--gres={g}"));
    }
    if let Some(c) = o.cpus_per_task {
        lines.push(format!("--cpus-per-task={c}"));
    }
    if let Some(m) = &o.mem {
        lines.push(format!("--mem={m}"));
    }
    lines.extend(o.sbatch.iter().cloned());
    lines
}

/// The array job of each experiment with cells not done, in grid order.
pub fn stages(grid: &Grid, o: &SlurmOptions) -> Result<Vec<Stage>, RunnerError> {
    let results = absolute(&grid.results)?;
    let grid_file = absolute(&grid.path)?;
    // (experiment order, phase) -> the stage's cells.
    let mut by_stage: std::collections::BTreeMap<(usize, usize), Stage> = Default::default();
    let mut experiments: Vec<&str> = Vec::new();
    for cell in &grid.cells {
        if !experiments.contains(&cell.experiment.as_str()) {
            experiments.push(&cell.experiment);
        }
        if store::is_done(&store::cell_dir(&grid.results, cell)) {
            continue;
        }
        let order = experiments.len() - 1;
        let phase = cell.phase();
        let tuned = cell.tuning.is_some();
        by_stage
            .entry((order, phase))
            .or_insert_with(|| Stage {
                experiment: cell.experiment.clone(),
                name: match (tuned, phase) {
                    (false, _) => cell.experiment.clone(),
                    (true, FINAL_PHASE) => format!("{}-final", cell.experiment),
                    (true, 0) => format!("{}-trials", cell.experiment),
                    (true, r) => format!("{}-rung{r}", cell.experiment),
                },
                after_search: false,
                cells: Vec::new(),
                script: String::new(),
            })
            .cells
            .push(cell.dir_name());
    }
    let mut out: Vec<Stage> = by_stage.into_values().collect();
    for i in 1..out.len() {
        let same = out[i].experiment == out[i - 1].experiment;
        out[i].after_search = same;
    }
    for stage in &mut out {
        let n = stage.cells.len();
        let array = match o.parallelism {
            Some(p) => format!("0-{}%{p}", n - 1),
            None => format!("0-{}", n - 1),
        };
        let mut s = String::from("#!/bin/bash\n");
        s += &format!(
            "#SBATCH --job-name={}\n",
            quote(&format!("rb-{}-{}", grid.name, stage.name))
        );
        s += &format!("#SBATCH --array={array}\n");
        // Until the task moves its output into its cell's folder.
        s += &format!(
            "#SBATCH --output={}\n",
            quote(
                &results
                    .join("slurm")
                    .join("%x-%A_%a.out")
                    .display()
                    .to_string()
            )
        );
        s += "#SBATCH --kill-on-invalid-dep=yes\n";
        // Preemption and the time limit: a warning signal to this script,
        // which passes it to the worker, and a task that can be requeued.
        s += &format!("#SBATCH --signal=B:USR1@{}\n", o.grace);
        s += "#SBATCH --requeue\n";
        for line in resource_lines(o, true) {
            s += &format!("#SBATCH {line}\n");
        }
        s += "set -euo pipefail\n";
        s += &format!("CELLS=({})\n", stage.cells.join(" "));
        s += "CELL=${CELLS[$SLURM_ARRAY_TASK_ID]}\n";
        s += &format!(
            "OUT={}/cells/$CELL\n",
            quote(&results.display().to_string())
        );
        s += "mkdir -p \"$OUT\"\n";
        // Appended: a requeued task adds its attempt to the same file.
        s += "exec >>\"$OUT/slurm-${SLURM_ARRAY_JOB_ID}_${SLURM_ARRAY_TASK_ID}.out\" 2>&1\n";
        s += "echo \"== attempt $(( ${SLURM_RESTART_COUNT:-0} + 1 )) on $(hostname)\"\n";
        let mut cmd = vec![
            quote(&o.binary.display().to_string()),
            "run".into(),
            quote(&grid_file.display().to_string()),
            "--cell".into(),
            "\"$CELL\"".into(),
            "--no-report".into(),
            "--device".into(),
            quote(o.device.as_deref().unwrap_or(&grid.device.to_string())),
        ];
        for set in &o.sets {
            cmd.push("--set".into());
            cmd.push(quote(set));
        }
        if let Some(data) = &o.data_root {
            cmd.push("--data-root".into());
            cmd.push(quote(&absolute(data)?.display().to_string()));
        }
        // The worker runs in the background so that this shell can take
        // Slurm's SIGUSR1 and pass it on; a worker that left (exit 3)
        // requeues the task, which resumes the cell from its checkpoint.
        s += &format!("{} &\n", cmd.join(" "));
        s += "WORKER=$!\n";
        s += "trap 'kill -USR1 \"$WORKER\" 2>/dev/null' USR1\n";
        s += "set +e\n";
        s += "while :; do\n";
        s += "  wait \"$WORKER\"; RC=$?\n";
        s += "  kill -0 \"$WORKER\" 2>/dev/null || break  # woken by the trap: wait on\n";
        s += "done\n";
        s += "if [ \"$RC\" -eq 3 ]; then\n";
        s += "  scontrol requeue \"${SLURM_ARRAY_JOB_ID}_${SLURM_ARRAY_TASK_ID}\"\n";
        s += "fi\n";
        s += "exit \"$RC\"\n";
        stage.script = s;
    }
    Ok(out)
}

/// The job that writes the report once the last stage has ended.
pub fn report_script(grid: &Grid, o: &SlurmOptions) -> Result<String, RunnerError> {
    let results = absolute(&grid.results)?;
    let mut s = String::from("#!/bin/bash\n");
    s += &format!(
        "#SBATCH --job-name={}\n",
        quote(&format!("rb-{}-report", grid.name))
    );
    s += &format!(
        "#SBATCH --output={}\n",
        quote(
            &results
                .join("slurm")
                .join("report-%j.out")
                .display()
                .to_string()
        )
    );
    // The report needs no accelerator.
    for line in resource_lines(o, false) {
        s += &format!("#SBATCH {line}\n");
    }
    s += &format!(
        "exec {} report {}\n",
        quote(&o.binary.display().to_string()),
        quote(&results.display().to_string())
    );
    Ok(s)
}

#[cfg(test)]
mod tests {
    use super::quote;

    #[test]
    fn quoting_leaves_plain_words_and_wraps_the_rest() {
        assert_eq!(quote("gpu:1"), "gpu:1");
        assert_eq!(quote("a b"), "'a b'");
        assert_eq!(quote("it's"), r"'it'\''s'");
    }
}
