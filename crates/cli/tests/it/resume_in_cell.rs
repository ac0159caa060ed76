//! Checkpoints inside a cell: a run killed (SIGKILL) at random points
//! inside its cells, then rerun until it completes, ends with the rows of an
//! uninterrupted run, bit for bit, and its reruns resume cells from their
//! checkpoints rather than from their beginning. One cell per protocol that
//! checkpoints: pretrain and resque (every epoch), continual with replay (a
//! buffer and its stream in the checkpoint), canonicalize with training
//! rotations (a stream in the checkpoint), performative with whole-model
//! retraining (each round's training).

use std::path::Path;
use std::time::{Duration, Instant};

use rand::{Rng, SeedableRng};

use crate::common::{bin, cell_rows, reproducible, run};

/// The pretraining every grid here starts from (its backbone and head feed
/// the other experiments).
const PRETRAIN: &str = r#"  - name: pretrain
    protocol: pretrain
    base:
      seed: 0
      data: { name: synthetic, classes: 6, train_per_class: 40, test_per_class: 8 }
      classes: [0, 1, 2, 3]
      backbone: { width: 8 }
      epochs: 4
      batch_size: 8
      optimizer: { lr: 0.05 }
      output: "{results}/pretrained/backbone.safetensors"
      head_output: "{results}/pretrained/head.safetensors"
"#;

fn grid(dir: &Path) -> std::path::PathBuf {
    let text = format!(
        r#"name: resume
results: {results}
checkpoint_every: 1
experiments:
{PRETRAIN}  - name: continual
    protocol: continual
    base:
      seed: 0
      data: {{ name: synthetic, classes: 6, train_per_class: 40, test_per_class: 8 }}
      classes: [0, 1, 2, 3, 4, 5]
      classes_per_task: 2
      backbone: {{ width: 8, checkpoint: "{{results}}/pretrained/backbone.safetensors" }}
      batch_size: 8
      knn: {{ k: 5, temperature: 0.1 }}
      method: {{ name: er, epochs: 3, optimizer: {{ lr: 0.05 }}, buffer_size: 24 }}
  - name: resque
    protocol: resque
    base:
      seed: 0
      data: {{ name: synthetic, classes: 6, train_per_class: 40, test_per_class: 8 }}
      classes: [0, 1, 2, 3]
      backbone: {{ width: 8, checkpoint: "{{results}}/pretrained/backbone.safetensors" }}
      head: "{{results}}/pretrained/head.safetensors"
      layer: layer3
      shift: {{ family: gaussian-noise, level: 5 }}
      retrain: {{ target_acc: 100, max_epochs: 4, batch_size: 8, optimizer: {{ lr: 0.05 }} }}
      cost: {{ energy: cpu-model, tdp_watts: 85, grid_intensity: 475 }}
  - name: canonicalize
    protocol: canonicalize
    base:
      seed: 0
      data: {{ name: synthetic, classes: 4, train_per_class: 40, test_per_class: 8 }}
      backbone: {{ width: 8, checkpoint: "{{results}}/pretrained/backbone.safetensors" }}
      head: "{{results}}/pretrained/head.safetensors"
      group_order: 4
      canonicalizer: {{ layers: 2, channels: 4, kernel: 5 }}
      epochs: 3
      batch_size: 16
      optimizer: {{ lr: 0.02 }}
      method: {{ name: aug }}
  - name: performative
    protocol: performative
    base:
      seed: 0
      data: {{ name: synthetic, classes: 4, train_per_class: 16, test_per_class: 40 }}
      backbone: {{ width: 8, checkpoint: "{{results}}/pretrained/backbone.safetensors" }}
      head: "{{results}}/pretrained/head.safetensors"
      rounds: 6
      temperature: 0.1
      n_train: 40
      n_test: 60
      min_per_class: 2
      method: {{ name: finetune, epochs: 2, batch_size: 8, optimizer: {{ lr: 0.05 }} }}
"#,
        results = dir.join("results").display()
    );
    let path = dir.join("grid.yaml");
    std::fs::write(&path, text).unwrap();
    path
}

/// Every stored row but times, per experiment.
fn all_rows(results: &Path) -> Vec<(String, Vec<String>)> {
    [
        "pretrain",
        "continual",
        "resque",
        "canonicalize",
        "performative",
    ]
    .iter()
    .flat_map(|e| reproducible(&cell_rows(results, e)))
    .collect()
}

/// Every stage checkpoint's state file now, with its modification time.
fn checkpoint_writes(
    results: &Path,
) -> std::collections::BTreeSet<(std::path::PathBuf, std::time::SystemTime)> {
    let mut seen = std::collections::BTreeSet::new();
    let Ok(cells) = std::fs::read_dir(results.join("cells")) else {
        return seen;
    };
    for cell in cells.flatten() {
        let Ok(stages) = std::fs::read_dir(cell.path().join("checkpoint")) else {
            continue;
        };
        for stage in stages.flatten() {
            let state = stage.path().join("state.json");
            if let Ok(t) = std::fs::metadata(&state).and_then(|m| m.modified()) {
                seen.insert((state, t));
            }
        }
    }
    seen
}

/// Whether any cell holds a stage checkpoint now.
fn has_checkpoint(results: &Path) -> bool {
    !checkpoint_writes(results).is_empty()
}

#[test]
fn a_cell_killed_at_random_points_resumes_from_its_checkpoints_with_identical_rows() {
    let full = tempfile::tempdir().unwrap();
    let (code, out) = run(&["run", grid(full.path()).to_str().unwrap(), "--no-report"]);
    assert_eq!(code, 0, "{out}");
    let reference = all_rows(&full.path().join("results"));
    assert!(
        reference.iter().any(|(m, _)| m == "er") && reference.len() == 5,
        "{reference:?}"
    );

    let tmp = tempfile::tempdir().unwrap();
    let grid = grid(tmp.path());
    let results = tmp.path().join("results");
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(31);
    let (mut kills, mut resumed_log) = (0, String::new());
    // Twelve attempts killed at random points, then one left to finish.
    for attempt in 0..13 {
        let log = tmp.path().join(format!("attempt-{attempt}.log"));
        let mut child = bin()
            .args(["run", grid.to_str().unwrap(), "--no-report"])
            .stdout(std::fs::File::create(&log).unwrap())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        // Kill at a random point after 1 to 4 new checkpoints were written
        // (inside a stage, between stages, or while one is written), so
        // that the kills spread over the grid's cells.
        let (start, before) = (Instant::now(), checkpoint_writes(&results));
        let (wanted, mut new) = (rng.random_range(1..=4), std::collections::BTreeSet::new());
        while new.len() < wanted && start.elapsed() < Duration::from_secs(120) {
            if child.try_wait().unwrap().is_some() {
                break;
            }
            new.extend(checkpoint_writes(&results).difference(&before).cloned());
            std::thread::sleep(Duration::from_millis(2));
        }
        std::thread::sleep(Duration::from_millis(rng.random_range(0..400)));
        let done = child.try_wait().unwrap().is_some();
        if attempt == 12 {
            let status = child.wait().unwrap();
            resumed_log.push_str(&std::fs::read_to_string(&log).unwrap());
            assert!(status.success(), "{resumed_log}");
            break;
        }
        if !done {
            child.kill().unwrap();
            kills += 1;
        }
        let status = child.wait().unwrap();
        resumed_log.push_str(&std::fs::read_to_string(&log).unwrap());
        if done {
            assert!(status.success(), "{resumed_log}");
            break;
        }
    }
    let resumes: Vec<&str> = resumed_log
        .lines()
        .filter(|l| l.contains("resumed from its checkpoint"))
        .collect();
    eprintln!("{kills} kill(s); stages resumed:\n{}", resumes.join("\n"));
    assert!(kills >= 6, "killed {kills} time(s): lengthen the cells");
    // Kills landed in more than one protocol's cells: continual's tasks
    // and at least one of the later cells.
    assert!(resumes.iter().any(|l| l.contains("task ")), "{resumes:?}");
    assert!(
        resumes
            .iter()
            .any(|l| l.contains("retrain") || l.contains("train aug")),
        "{resumes:?}"
    );
    assert!(
        resumed_log.contains("resumed from its checkpoint"),
        "no rerun resumed a stage from a checkpoint: {resumed_log}"
    );
    assert_eq!(
        all_rows(&results),
        reference,
        "rows changed by kills and resumes"
    );
    // A finished cell keeps no checkpoint.
    assert!(!has_checkpoint(&results));
}

fn dropout_grid(dir: &Path) -> std::path::PathBuf {
    let text = format!(
        r#"name: resume-dropout
results: {results}
checkpoint_every: 1
experiments:
{PRETRAIN}  - name: canonicalize
    protocol: canonicalize
    base:
      seed: 0
      data: {{ name: synthetic, classes: 4, train_per_class: 40, test_per_class: 8 }}
      backbone: {{ width: 8, checkpoint: "{{results}}/pretrained/backbone.safetensors" }}
      head: "{{results}}/pretrained/head.safetensors"
      group_order: 8
      canonicalizer: {{ network: escnn, layers: 2, channels: 4, kernel: 5 }}
      epochs: 4
      batch_size: 16
      optimizer: {{ lr: 0.02 }}
      method: {{ name: canon-prior, prior_weight: 100, prior_epochs: 4 }}
"#,
        results = dir.join("results").display()
    );
    let path = dir.join("grid.yaml");
    std::fs::write(&path, text).unwrap();
    path
}

/// The epoch of stage `stage`'s checkpoint in the canonicalize cell, while
/// the stage is unfinished.
fn unfinished_epoch(results: &Path, stage: usize) -> Option<u64> {
    let cells = std::fs::read_dir(results.join("cells")).ok()?;
    cells.flatten().find_map(|cell| {
        let name = cell.file_name().to_string_lossy().to_string();
        let state = cell
            .path()
            .join(format!("checkpoint/stage-{stage:04}/state.json"));
        let text = std::fs::read_to_string(state).ok()?;
        let state: serde_json::Value = serde_json::from_str(&text).ok()?;
        (name.starts_with("canonicalize-") && state["finished"] == false)
            .then(|| state["epoch"].as_u64())
            .flatten()
    })
}

/// The escnn canonicalizer's dropout masks come from a stream that the
/// checkpoints keep: its canon-prior cell killed inside the prior-only
/// warm-up (stage 0) and again inside the joint training (stage 1), then
/// rerun, ends with the rows of an uninterrupted run, bit for bit.
#[test]
fn a_canonicalizer_with_dropout_resumes_from_its_checkpoints_with_identical_rows() {
    let full = tempfile::tempdir().unwrap();
    let (code, out) = run(&[
        "run",
        dropout_grid(full.path()).to_str().unwrap(),
        "--no-report",
    ]);
    assert_eq!(code, 0, "{out}");
    let reference = reproducible(&cell_rows(&full.path().join("results"), "canonicalize"));
    assert_eq!(reference.len(), 1, "{reference:?}");

    let tmp = tempfile::tempdir().unwrap();
    let grid = dropout_grid(tmp.path());
    let results = tmp.path().join("results");
    let mut log = String::new();
    for stage in [Some(0), Some(1), None] {
        let path = tmp.path().join("attempt.log");
        let mut child = bin()
            .args(["run", grid.to_str().unwrap(), "--no-report"])
            .stdout(std::fs::File::create(&path).unwrap())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        if let Some(stage) = stage {
            let start = Instant::now();
            while unfinished_epoch(&results, stage).is_none_or(|e| e < 1) {
                assert!(
                    child.try_wait().unwrap().is_none(),
                    "the cell ended before stage {stage}'s checkpoint"
                );
                assert!(
                    start.elapsed() < Duration::from_secs(300),
                    "no checkpoint of stage {stage}"
                );
                std::thread::sleep(Duration::from_millis(1));
            }
            child.kill().unwrap();
        }
        let status = child.wait().unwrap();
        log.push_str(&std::fs::read_to_string(&path).unwrap());
        if stage.is_none() {
            assert!(status.success(), "{log}");
        }
    }
    for stage in ["prior warm-up", "train canon-prior"] {
        assert!(
            log.lines()
                .any(|l| l.contains(stage) && l.contains("resumed from its checkpoint")),
            "{stage} did not resume:\n{log}"
        );
    }
    assert_eq!(
        reproducible(&cell_rows(&results, "canonicalize")),
        reference,
        "rows changed by kills and resumes"
    );
}
