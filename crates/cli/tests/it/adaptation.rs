//! The continual adaptation evaluation's modes from the CLI: `shots`
//! training images per class, `lp-ft` (probe, then fine-tune from the
//! probed head) against the plain probe, and the keys `validate` refuses.

use crate::common::{cell_rows, run, smoke_grid_text};

/// The continual smoke grid, sgd only, with `adaptation` set to `spec`.
fn grid(dir: &std::path::Path, spec: &str) -> std::path::PathBuf {
    let text = smoke_grid_text("continual", dir).replace(
        "      knn: { k: 5, temperature: 0.1 }\n",
        &format!("      knn: {{ k: 5, temperature: 0.1 }}\n      adaptation: {spec}\n"),
    );
    let text = text.replace(
        "        - { name: lp-ft, lp_epochs: 2, ft_epochs: 1, lp_optimizer: { lr: 0.1 }, ft_optimizer: { lr: 0.05 } }\n",
        "",
    );
    assert!(text.contains("adaptation:"), "{text}");
    let path = dir.join("grid.yaml");
    std::fs::write(&path, text).unwrap();
    path
}

/// Rows of `metric` whose `stage` coordinate is `stage`.
fn at_stage(rows: &[serde_json::Value], metric: &str, stage: &str) -> usize {
    rows.iter()
        .filter(|r| r["metric"] == metric && r["coords"]["stage"] == stage)
        .count()
}

/// `lp-ft` adds a fine-tuning stage after the probe (its own curve, stage
/// `adaptation-ft`: 2 epochs x 2 tasks x the final and from-scratch
/// starts); the probe alone has none. Both adapt on 4 shots per class.
#[test]
fn lp_ft_adaptation_fine_tunes_after_the_probe_on_shots() {
    let mut ft_rows = Vec::new();
    for spec in [
        "{ shots: 4, epochs: 2, optimizer: { lr: 0.05 } }",
        "{ mode: lp-ft, shots: 4, epochs: 2, ft_epochs: 2, optimizer: { lr: 0.05 } }",
    ] {
        let tmp = tempfile::tempdir().unwrap();
        let g = grid(tmp.path(), spec);
        let (code, out) = run(&["run", g.to_str().unwrap(), "--no-report"]);
        assert_eq!(code, 0, "{out}");
        let cells = cell_rows(&tmp.path().join("results"), "continual");
        let (_, rows) = &cells[0];
        // 4 shots of each of a task's 2 classes.
        let images: Vec<f64> = rows
            .iter()
            .filter(|r| r["metric"] == "adapt_train_images")
            .map(|r| r["value"].as_f64().unwrap())
            .collect();
        assert_eq!(images, vec![8.0, 8.0], "{spec}");
        assert_eq!(
            at_stage(rows, "curve_loss", "adaptation"),
            8,
            "{spec}: the probe"
        );
        ft_rows.push(at_stage(rows, "curve_loss", "adaptation-ft"));
    }
    assert_eq!(ft_rows, vec![0, 8]);
}

#[test]
fn validate_names_the_adaptation_keys_that_conflict() {
    for (spec, key) in [
        (
            "{ mode: lp-ft, epochs: 2, optimizer: { lr: 0.05 } }",
            "adaptation.ft_epochs",
        ),
        (
            "{ mode: linear-probe, fine_tune: true, epochs: 2, optimizer: { lr: 0.05 } }",
            "adaptation.fine_tune",
        ),
        (
            "{ epochs: 2, ft_epochs: 1, optimizer: { lr: 0.05 } }",
            "adaptation.ft_epochs",
        ),
    ] {
        let tmp = tempfile::tempdir().unwrap();
        let g = grid(tmp.path(), spec);
        let (code, out) = run(&["validate", g.to_str().unwrap()]);
        assert_eq!(code, 2, "{spec}: {out}");
        assert!(
            out.contains(key) && out.contains("grid.yaml"),
            "{spec}: {out}"
        );
    }
}
