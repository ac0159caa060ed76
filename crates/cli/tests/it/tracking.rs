//! Rows as cells make them: every cell's `live.jsonl` holds its curve rows
//! and its per-task rows before the cell ends (here: after it, compared with
//! `rows.json`), and
//! `run --tensorboard` writes event files that our reader and, where it is
//! installed, TensorBoard's own read back.

use std::path::Path;
use std::process::Command;

use reusebench_runner::tensorboard::read_scalars;

use crate::common::{repo, run, smoke_grid_text};

fn event_files(root: &Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else if p
                .file_name()
                .unwrap()
                .to_string_lossy()
                .starts_with("events.out.tfevents.")
            {
                out.push(p);
            }
        }
    }
    out.sort();
    out
}

#[test]
fn tensorboard_files_read_back() {
    let tmp = tempfile::tempdir().unwrap();
    let grid = tmp.path().join("continual.yaml");
    std::fs::write(&grid, smoke_grid_text("continual", tmp.path())).unwrap();
    let (code, out) = run(&[
        "run",
        grid.to_str().unwrap(),
        "--tensorboard",
        "--no-report",
    ]);
    assert_eq!(code, 0, "{out}");
    let results = tmp.path().join("results");
    let cells: Vec<_> = std::fs::read_dir(results.join("cells"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert!(!cells.is_empty());
    for dir in &cells {
        // The live file holds the cell's curve rows, in order, as rows.json does.
        let rows: Vec<serde_json::Value> =
            serde_json::from_str(&std::fs::read_to_string(dir.join("rows.json")).unwrap()).unwrap();
        let curves: Vec<String> = rows
            .iter()
            .filter(|r| r["metric"] == "curve_loss")
            .map(|r| format!("{}|{}", r["value"], r["coords"]))
            .collect();
        let live: Vec<String> = std::fs::read_to_string(dir.join("live.jsonl"))
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
            .filter(|r| r["metric"] == "curve_loss")
            .map(|r| format!("{}|{}", r["value"], r["coords"]))
            .collect();
        assert!(!curves.is_empty(), "{}", dir.display());
        assert_eq!(live, curves, "{}", dir.display());
        // A continual cell's accuracy matrix goes live task by task.
        let matrix = |text: &str| -> usize { text.matches("\"acc_class_il\"").count() };
        let stored = std::fs::read_to_string(dir.join("rows.json")).unwrap();
        let streamed = std::fs::read_to_string(dir.join("live.jsonl")).unwrap();
        if matrix(&stored) > 0 {
            assert_eq!(matrix(&streamed), matrix(&stored), "{}", dir.display());
        }
    }
    // One event file per cell, under tb/<experiment>/<label> seed=<s> (<id>).
    let tb = results.join("tb");
    let files = event_files(&tb);
    assert_eq!(files.len(), cells.len(), "{files:?}");
    assert!(
        files
            .iter()
            .any(|f| f.to_string_lossy().contains("/continual/sgd seed=1 (")),
        "{files:?}"
    );
    for f in &files {
        let scalars = read_scalars(f).unwrap();
        let losses: Vec<i64> = scalars
            .iter()
            .filter(|(t, _, _)| t.starts_with("curve_loss/"))
            .map(|(_, s, _)| *s)
            .collect();
        assert!(!losses.is_empty(), "{}: {scalars:?}", f.display());
        assert!(
            scalars
                .iter()
                .any(|(t, s, _)| !t.starts_with("curve_") && *s == 0),
            "summary rows too"
        );
    }
    // TensorBoard's own reader, where it is installed.
    let has_tb = Command::new("python3")
        .args(["-c", "import tensorboard"])
        .status()
        .is_ok_and(|s| s.success());
    if !has_tb {
        eprintln!(
            "skipped TensorBoard's reader: `python3 -c 'import tensorboard'` fails (pip install tensorboard)"
        );
        return;
    }
    let script = repo().join("scripts/check_tensorboard.py");
    let out = Command::new("python3")
        .arg(&script)
        .arg(&tb)
        .output()
        .unwrap();
    let text =
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{text}");
    assert_eq!(
        text.lines().filter(|l| l.contains("curve_loss/")).count(),
        cells.len(),
        "{text}"
    );
}
