//! Grids shared by several workers: two `reusebench run` processes on one
//! results folder, a killed worker's claim taken over, shards and single
//! cells, `status`, the scripts `submit --slurm` writes, and a real Slurm
//! (a single-node cluster from `scripts/slurm-local.sh`, where one runs).

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::common::{bin, cell_dirs, cell_rows, repo, reproducible, run};

/// The continual smoke grid (a pretrain cell and four continual cells that
/// read its checkpoint) with its results folder in `dir`.
fn grid_in(dir: &Path) -> PathBuf {
    let text = std::fs::read_to_string(repo().join("experiments/smoke/continual.yaml"))
        .unwrap()
        .replace(
            "results: results/smoke-continual",
            &format!("results: {}", dir.join("results").display()),
        );
    let path = dir.join("grid.yaml");
    std::fs::write(&path, text).unwrap();
    path
}

/// The grid's cell ids, in grid order (from `validate`).
fn cell_ids(grid: &Path) -> Vec<String> {
    let (code, out) = run(&["validate", grid.to_str().unwrap()]);
    assert_eq!(code, 0, "{out}");
    out.lines()
        .filter_map(|l| l.split_whitespace().next())
        .filter_map(|w| w.rsplit_once('-').map(|(_, id)| id.to_string()))
        .filter(|id| id.len() == 12 && id.chars().all(|c| c.is_ascii_hexdigit()))
        .collect()
}

/// Ids of the cells a run's output says it ran (done or failed).
fn ran(out: &str) -> Vec<String> {
    out.lines()
        .filter(|l| l.contains("] done in") || l.contains("] FAILED"))
        .filter_map(|l| {
            let start = l.rfind(" [")? + 2;
            let end = start + l[start..].find(']')?;
            Some(l[start..end].to_string())
        })
        .collect()
}

/// Every cell's rows, timing metrics left out, bits of every value, by
/// experiment in grid order.
fn rows_by_cell(results: &Path) -> Vec<(String, Vec<String>)> {
    ["pretrain", "continual"]
        .iter()
        .flat_map(|e| reproducible(&cell_rows(results, e)))
        .collect()
}

#[test]
fn two_workers_on_one_results_folder_run_every_cell_once() {
    let tmp = tempfile::tempdir().unwrap();
    let grid = grid_in(tmp.path());
    let g = grid.to_str().unwrap();
    let ids = cell_ids(&grid);
    assert_eq!(ids.len(), 5);
    let spawn = || {
        bin()
            .args(["run", g, "--no-report"])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap()
    };
    let (a, b) = (spawn(), spawn());
    let (a, b) = (a.wait_with_output().unwrap(), b.wait_with_output().unwrap());
    let text = |o: &std::process::Output| {
        format!(
            "{}{}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        )
    };
    let (ta, tb) = (text(&a), text(&b));
    assert!(a.status.success() && b.status.success(), "{ta}\n----\n{tb}");
    let mut all = ran(&ta);
    all.extend(ran(&tb));
    all.sort();
    let mut want = ids.clone();
    want.sort();
    assert_eq!(all, want, "every cell run exactly once:\n{ta}\n----\n{tb}");
    // Every cell done, no claim left behind.
    let (code, out) = run(&["status", tmp.path().join("results").to_str().unwrap()]);
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains("done     5") && out.contains("running  0"),
        "{out}"
    );
    let claims = std::fs::read_dir(tmp.path().join("results/cells"))
        .unwrap()
        .filter(|e| e.as_ref().unwrap().path().join("claim.json").exists())
        .count();
    assert_eq!(claims, 0);
}

#[test]
fn a_killed_workers_claim_is_taken_over_and_the_grid_completes() {
    let tmp = tempfile::tempdir().unwrap();
    let grid = grid_in(tmp.path());
    let g = grid.to_str().unwrap();
    let cells = tmp.path().join("results/cells");
    let mut child = bin()
        .args(["run", g, "--no-report"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // Kill (SIGKILL) while a continual cell is running under its claim.
    let running = || -> Option<PathBuf> {
        std::fs::read_dir(&cells).ok()?.find_map(|e| {
            let dir = e.ok()?.path();
            let status = std::fs::read_to_string(dir.join("status.json")).ok()?;
            let name = dir.file_name()?.to_string_lossy().to_string();
            (name.starts_with("continual")
                && dir.join("claim.json").exists()
                && status.contains("\"running\""))
            .then_some(dir)
        })
    };
    let start = Instant::now();
    let mut victim = None;
    while victim.is_none() && start.elapsed() < Duration::from_secs(120) {
        victim = running();
        std::thread::sleep(Duration::from_millis(5));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    let victim = victim.expect("a cell was running");

    // `status` reports it as interrupted, not running.
    let results = tmp.path().join("results");
    let (_, out) = run(&["status", results.to_str().unwrap()]);
    let still_claimed = victim.join("claim.json").exists();
    if still_claimed {
        assert!(
            out.contains("running  0") && out.contains("interrupted"),
            "{out}"
        );
    }

    let (code, out) = run(&["run", g, "--no-report"]);
    assert_eq!(code, 0, "{out}");
    if still_claimed && !victim.join("rows.json").exists() {
        assert!(
            out.contains("took over") && out.contains("is gone"),
            "the dead worker's claim is taken over:\n{out}"
        );
    }
    let (_, out) = run(&["status", results.to_str().unwrap()]);
    assert!(out.contains("done     5"), "{out}");
}

#[test]
fn shards_split_a_grid_and_a_cell_runs_alone() {
    let tmp = tempfile::tempdir().unwrap();
    let grid = grid_in(tmp.path());
    let g = grid.to_str().unwrap();
    let ids = cell_ids(&grid);
    let results = tmp.path().join("results");

    // Shard 1/2 first: its cells need the pretrain cell (shard 0), which
    // nobody runs, so they fail with that reason, and run nothing.
    let (code, out) = run(&["run", g, "--no-report", "--shard", "1/2"]);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("has not written"), "{out}");
    let (_, status) = run(&["status", results.to_str().unwrap()]);
    assert!(
        status.contains("failed   2") && status.contains("pending  3"),
        "{status}"
    );

    let (code, out) = run(&["run", g, "--no-report", "--shard", "0/2"]);
    assert_eq!(code, 0, "{out}");
    let mut mine = ran(&out);
    mine.sort();
    let mut want = vec![ids[0].clone(), ids[2].clone(), ids[4].clone()];
    want.sort();
    assert_eq!(mine, want, "{out}");

    let (code, out) = run(&["run", g, "--no-report", "--cell", &ids[1]]);
    assert_eq!(code, 0, "{out}");
    assert_eq!(ran(&out), vec![ids[1].clone()]);
    let (_, status) = run(&["status", results.to_str().unwrap()]);
    assert!(
        status.contains("done     4") && status.contains("failed   1"),
        "{status}"
    );
    assert!(
        status.contains("has not written"),
        "a failed cell's reason: {status}"
    );

    let (code, out) = run(&["run", g, "--no-report", "--cell", "nope"]);
    assert_eq!(code, 2, "{out}");
    assert!(out.contains("--cell nope: no such cell"), "{out}");
    let (code, out) = run(&["run", g, "--shard", "2/2"]);
    assert_eq!(code, 2, "{out}");
}

#[test]
fn submit_dry_run_prints_the_array_jobs() {
    let tmp = tempfile::tempdir().unwrap();
    let grid = grid_in(tmp.path());
    let (code, out) = run(&[
        "submit",
        grid.to_str().unwrap(),
        "--slurm",
        "--dry-run",
        "--partition",
        "gpu",
        "--time",
        "02:00:00",
        "--gres",
        "gpu:1",
        "--cpus-per-task",
        "4",
        "--mem",
        "16G",
        "--parallelism",
        "2",
        "--sbatch=--account=lab",
        "--device",
        "cpu",
    ]);
    assert_eq!(code, 0, "{out}");
    let tmp_path = std::path::absolute(tmp.path()).unwrap();
    let text = out
        .replace(env!("CARGO_BIN_EXE_reusebench"), "[BIN]")
        .replace(&tmp_path.display().to_string(), "[TMP]");
    insta::assert_snapshot!(text);
    assert!(
        !tmp.path().join("results/slurm").exists(),
        "a dry run writes nothing"
    );
}

/// A `tune:` search is submitted by phase: the trials, then (once they
/// have all ended, failed ones included) the final runs that rank them.
#[test]
fn submit_runs_a_search_phase_by_phase() {
    let tmp = tempfile::tempdir().unwrap();
    let grid = tmp.path().join("tune.yaml");
    std::fs::write(&grid, crate::common::smoke_grid_text("tune", tmp.path())).unwrap();
    let (code, out) = run(&["submit", grid.to_str().unwrap(), "--slurm", "--dry-run"]);
    assert_eq!(code, 0, "{out}");
    let jobs: Vec<&str> = out.lines().filter(|l| l.starts_with("# ---- ")).collect();
    assert_eq!(jobs.len(), 4, "{out}");
    assert!(
        jobs[0].starts_with("# ---- pretrain: 1 cell(s)"),
        "{}",
        jobs[0]
    );
    assert!(
        jobs[1].starts_with("# ---- debias-trials: 8 cell(s)")
            && jobs[1].contains("afterok:<pretrain>"),
        "{}",
        jobs[1]
    );
    assert!(
        jobs[2].starts_with("# ---- debias-final: 4 cell(s)")
            && jobs[2].contains("afterany:<debias-trials>"),
        "{}",
        jobs[2]
    );
    assert!(jobs[3].contains("afterany:<debias-final>"), "{}", jobs[3]);
}

/// Waits until none of `jobs` is queued or running.
fn wait_for(jobs: &[String], limit: Duration) {
    let start = Instant::now();
    loop {
        // Every queued job (an array's tasks by their array job id): asking
        // for ids Slurm has already forgotten would be an error.
        let out = Command::new("squeue")
            .args(["-h", "-o", "%A %F"])
            .output()
            .unwrap();
        let queued = String::from_utf8_lossy(&out.stdout);
        if !queued
            .split_whitespace()
            .any(|id| jobs.iter().any(|j| j == id))
        {
            return;
        }
        assert!(start.elapsed() < limit, "Slurm jobs {jobs:?} still queued");
        std::thread::sleep(Duration::from_millis(500));
    }
}

fn submitted(out: &str) -> Vec<String> {
    out.lines()
        .filter_map(|l| l.split("job ").nth(1))
        .map(|j| j.trim().to_string())
        .collect()
}

fn slurm_up() -> Result<(), String> {
    let out = Command::new("sinfo")
        .args(["-h", "-N", "-o", "%t"])
        .output()
        .map_err(|e| format!("no sinfo ({e}): Slurm is not installed"))?;
    let states = String::from_utf8_lossy(&out.stdout);
    if states
        .lines()
        .any(|s| ["idle", "mix", "alloc"].contains(&s.trim()))
    {
        Ok(())
    } else {
        Err(format!(
            "no Slurm node takes jobs (sinfo: {}{}); `scripts/slurm-local.sh start` starts one",
            states.trim(),
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

/// Whether Slurm is down, which skips `test`: said straight to the
/// stream, past the test harness's capture, since a skip must be seen in
/// CI's log.
fn skipped_without_slurm(test: &str) -> bool {
    let Err(why) = slurm_up() else {
        return false;
    };
    use std::io::Write;
    let _ = writeln!(std::io::stderr(), "{test}: skipped: {why}");
    true
}

#[test]
fn a_real_slurm_runs_the_grid_and_a_cancelled_array_resubmits() {
    if skipped_without_slurm("a_real_slurm_runs_the_grid_and_a_cancelled_array_resubmits") {
        return;
    }
    // The reference: a local run.
    let local = tempfile::tempdir().unwrap();
    let (code, out) = run(&[
        "run",
        grid_in(local.path()).to_str().unwrap(),
        "--no-report",
    ]);
    assert_eq!(code, 0, "{out}");
    let reference = rows_by_cell(&local.path().join("results"));

    // One grid submitted and left to finish.
    let first = tempfile::tempdir().unwrap();
    let grid = grid_in(first.path());
    let (code, out) = run(&[
        "submit",
        grid.to_str().unwrap(),
        "--slurm",
        "--cpus-per-task",
        "1",
    ]);
    assert_eq!(code, 0, "{out}");
    let jobs = submitted(&out);
    assert_eq!(jobs.len(), 3, "pretrain, continual, report: {out}");
    wait_for(&jobs, Duration::from_secs(300));
    let results = first.path().join("results");
    assert_eq!(rows_by_cell(&results), reference, "Slurm rows = local rows");
    assert!(results.join("summary.md").is_file(), "the report job ran");
    // Each task's output sits in its cell's folder.
    let outputs = std::fs::read_dir(results.join("cells"))
        .unwrap()
        .filter(|e| {
            std::fs::read_dir(e.as_ref().unwrap().path())
                .unwrap()
                .any(|f| {
                    f.unwrap()
                        .file_name()
                        .to_string_lossy()
                        .starts_with("slurm-")
                })
        })
        .count();
    assert_eq!(outputs, 5);

    // A second grid, its continual array cancelled mid-way, then submitted again.
    let second = tempfile::tempdir().unwrap();
    let grid = grid_in(second.path());
    let g = grid.to_str().unwrap();
    let (code, out) = run(&[
        "submit",
        g,
        "--slurm",
        "--cpus-per-task",
        "1",
        "--parallelism",
        "1",
    ]);
    assert_eq!(code, 0, "{out}");
    let jobs = submitted(&out);
    let results = second.path().join("results");
    let done = || {
        std::fs::read_dir(results.join("cells"))
            .map(|rd| {
                rd.filter(|e| e.as_ref().unwrap().path().join("rows.json").exists())
                    .count()
            })
            .unwrap_or(0)
    };
    let start = Instant::now();
    while done() < 2 && start.elapsed() < Duration::from_secs(300) {
        std::thread::sleep(Duration::from_millis(100));
    }
    let status = Command::new("scancel").arg(&jobs[1]).status().unwrap();
    assert!(status.success());
    wait_for(&jobs, Duration::from_secs(120));
    let cancelled_at = done();
    assert!(
        cancelled_at < 5,
        "the cancel came before the array finished"
    );
    let (code, out) = run(&["submit", g, "--slurm", "--cpus-per-task", "1"]);
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains(&format!("continual: {} cell(s)", 5 - cancelled_at)),
        "only the cells not done are submitted again: {out}"
    );
    wait_for(&submitted(&out), Duration::from_secs(300));
    assert_eq!(
        rows_by_cell(&results),
        reference,
        "no row lost or duplicated after cancel and resubmit"
    );
}

/// Preemption: Slurm's warning signal (SIGUSR1, `--signal=B:USR1@grace`)
/// reaches a task mid-cell; its worker checkpoints the cell after its
/// current batch, releases it and leaves, the task requeues itself, and the
/// second attempt resumes the cell from that checkpoint: the rows equal an
/// uninterrupted local run's.
#[test]
fn a_signalled_task_leaves_its_cell_and_requeues_with_identical_rows() {
    if skipped_without_slurm("a_signalled_task_leaves_its_cell_and_requeues_with_identical_rows") {
        return;
    }
    // One pretrain cell, long enough (seconds) to be signalled mid-way.
    let grid_text = |dir: &Path| {
        let path = dir.join("grid.yaml");
        std::fs::write(
            &path,
            format!(
                "name: preempt\nresults: {}\nexperiments:\n  - name: pretrain\n    protocol: pretrain\n    base:\n      seed: 0\n      data: {{ name: synthetic, classes: 4, train_per_class: 150, test_per_class: 10 }}\n      backbone: {{ width: 8 }}\n      epochs: 8\n      batch_size: 16\n      optimizer: {{ lr: 0.05 }}\n      output: \"{{results}}/backbone.safetensors\"\n",
                dir.join("results").display()
            ),
        )
        .unwrap();
        path
    };
    let local = tempfile::tempdir().unwrap();
    let (code, out) = run(&[
        "run",
        grid_text(local.path()).to_str().unwrap(),
        "--no-report",
    ]);
    assert_eq!(code, 0, "{out}");
    let reference = reproducible(&cell_rows(&local.path().join("results"), "pretrain"));

    let tmp = tempfile::tempdir().unwrap();
    let grid = grid_text(tmp.path());
    let (code, out) = run(&[
        "submit",
        grid.to_str().unwrap(),
        "--slurm",
        "--cpus-per-task",
        "1",
        "--grace",
        "30",
    ]);
    assert_eq!(code, 0, "{out}");
    let jobs = submitted(&out);
    let results = tmp.path().join("results");
    let cell = || cell_dirs(&results, "pretrain").into_iter().next();
    // Wait for the cell to run (claimed, not done), then signal the task.
    let start = Instant::now();
    let dir = loop {
        if let Some(d) = cell()
            && d.join("claim.json").exists()
        {
            break d;
        }
        assert!(
            start.elapsed() < Duration::from_secs(120),
            "the task never started"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    std::thread::sleep(Duration::from_millis(1500));
    assert!(
        !dir.join("rows.json").exists(),
        "the cell finished before the signal: lengthen it"
    );
    let status = Command::new("scancel")
        .args(["--signal=USR1", "--batch", &jobs[0]])
        .status()
        .unwrap();
    assert!(status.success());
    wait_for(&jobs, Duration::from_secs(300));
    assert_eq!(
        reproducible(&cell_rows(&results, "pretrain")),
        reference,
        "the requeued cell's rows equal an uninterrupted run's"
    );
    let log: String = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| {
            p.file_name()
                .unwrap()
                .to_string_lossy()
                .starts_with("slurm-")
        })
        .map(|p| std::fs::read_to_string(p).unwrap())
        .collect();
    assert!(
        log.contains(
            "SIGUSR1: leaving; 1 running cell(s) released, checkpointed after its current batch"
        ),
        "{log}"
    );
    assert!(log.contains("== attempt 2"), "requeued: {log}");
    assert!(
        log.contains("resumed from its checkpoint (stage 0, epoch"),
        "the requeued attempt resumed the stage: {log}"
    );
}
