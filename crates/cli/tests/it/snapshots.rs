//! Text outputs held as insta snapshots, so that a change in what a
//! researcher reads is seen in review: `validate`'s error messages here;
//! a summary and `status` in `toy_protocol.rs` (a protocol whose values
//! are exact arithmetic, the same on every CPU). Paths of the temporary folder are written
//! as `[DIR]`. Update with `INSTA_UPDATE=always cargo test --test snapshots`
//! and review the diff.

use std::path::Path;

use crate::common::{repo, run, smoke_grid_text};

/// `text` with the temporary folder and the repository written as placeholders.
fn redact(text: &str, dir: &Path) -> String {
    let repo = repo().canonicalize().unwrap();
    text.replace(&dir.display().to_string(), "[DIR]")
        .replace(&repo.display().to_string(), "[REPO]")
}

#[test]
fn validate_reports_every_problem_with_file_line_and_key() {
    let tmp = tempfile::tempdir().unwrap();
    let text = smoke_grid_text("continual", tmp.path())
        .replacen("classes_per_task: 2", "classes_per_task: 3", 1)
        .replacen("batch_size: 8", "batch_sise: 8", 1)
        .replacen("lr: 0.05", "lr: -0.05", 1);
    let grid = tmp.path().join("bad.yaml");
    std::fs::write(&grid, text).unwrap();
    let (code, out) = run(&["validate", grid.to_str().unwrap()]);
    assert_eq!(code, 2, "{out}");
    insta::assert_snapshot!(redact(&out, tmp.path()));
}

#[test]
fn an_unknown_method_names_the_known_ones() {
    let tmp = tempfile::tempdir().unwrap();
    let text = smoke_grid_text("continual", tmp.path()).replace("{ name: sgd,", "{ name: sgdd,");
    let grid = tmp.path().join("bad.yaml");
    std::fs::write(&grid, text).unwrap();
    let (code, out) = run(&["validate", grid.to_str().unwrap()]);
    assert_eq!(code, 2, "{out}");
    insta::assert_snapshot!(redact(&out, tmp.path()));
}
