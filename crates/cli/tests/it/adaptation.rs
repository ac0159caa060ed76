//! The continual adaptation evaluation's modes from the CLI: `shots`
//! training images per class, `lp-ft` (probe, then fine-tune from the
//! probed head) against the plain probe, and the keys `validate` refuses.

use crate::common::{cell_rows, reproducible, run, smoke_grid_text};

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

/// The values of `metric`'s rows, in order.
fn values(rows: &[serde_json::Value], metric: &str) -> Vec<f64> {
    rows.iter()
        .filter(|r| r["metric"] == metric)
        .map(|r| r["value"].as_f64().unwrap())
        .collect()
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
        assert_eq!(values(rows, "adapt_train_images"), vec![8.0, 8.0], "{spec}");
        assert_eq!(
            at_stage(rows, "curve_loss", "adaptation"),
            8,
            "{spec}: the probe"
        );
        ft_rows.push(at_stage(rows, "curve_loss", "adaptation-ft"));
    }
    assert_eq!(ft_rows, vec![0, 8]);
}

/// Fine-tuning on fewer shots than one batch (2 shots of 2 classes
/// against the grid's batch of 8) trains on the whole set as one batch:
/// every epoch of every adaptation has a loss, none is skipped or fails.
#[test]
fn a_few_shot_set_smaller_than_a_batch_is_one_batch() {
    let tmp = tempfile::tempdir().unwrap();
    let g = grid(
        tmp.path(),
        "{ mode: finetune, shots: 2, epochs: 2, optimizer: { lr: 0.05 } }",
    );
    let (code, out) = run(&["run", g.to_str().unwrap(), "--no-report"]);
    assert_eq!(code, 0, "{out}");
    let cells = cell_rows(&tmp.path().join("results"), "continual");
    let (_, rows) = &cells[0];
    assert_eq!(
        values(rows, "adapt_train_images"),
        vec![4.0, 4.0],
        "fewer than the batch of 8"
    );
    let losses: Vec<f64> = rows
        .iter()
        .filter(|r| r["metric"] == "curve_loss" && r["coords"]["stage"] == "adaptation")
        .map(|r| r["value"].as_f64().unwrap())
        .collect();
    // 2 epochs x 2 tasks x (the final model, the random reference).
    assert_eq!(losses.len(), 8, "{losses:?}");
    assert!(
        losses.iter().all(|l| l.is_finite() && *l > 0.0),
        "{losses:?}"
    );
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
        (
            "{ epochs: 2, optimizer: { lr: 0.05 }, downstream: { data: { name: synthetic, classes: 6 }, classes: [0, 9] } }",
            "adaptation.downstream.classes",
        ),
        (
            "{ epochs: 2, optimizer: { lr: 0.05 }, shots: [5, 5] }",
            "adaptation.shots",
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

/// The scalar value of `metric`, or the value at `coords` (a JSON object).
fn value_at(rows: &[serde_json::Value], metric: &str, coords: serde_json::Value) -> Option<f64> {
    rows.iter()
        .find(|r| {
            r["metric"] == metric
                && (r["coords"] == coords
                    || (coords.as_object().is_some_and(|o| o.is_empty()) && r["coords"].is_null()))
        })
        .map(|r| r["value"].as_f64().unwrap())
}

/// `every_task` adapts after the first task too and reads forgetting from
/// it; `downstream` adapts to classes the sequence never trains on. Neither
/// changes training: the accuracy matrix and the final adaptation are the
/// same bit for bit as without them.
#[test]
fn adaptation_after_every_task_and_on_a_downstream_task() {
    let base = "shots: 4, epochs: 2, optimizer: { lr: 0.05 }";
    let downstream = "downstream: { data: { name: synthetic, classes: 6, train_per_class: 12, test_per_class: 4 }, classes: [0, 1] }";
    let mut runs = Vec::new();
    for spec in [
        format!("{{ {base} }}"),
        format!("{{ {base}, every_task: true, {downstream} }}"),
    ] {
        let tmp = tempfile::tempdir().unwrap();
        let g = grid(tmp.path(), &spec);
        let (code, out) = run(&["run", g.to_str().unwrap(), "--no-report"]);
        assert_eq!(code, 0, "{out}");
        // Seed 0's cell (folders are named by digest, not by seed).
        let cells = cell_rows(&tmp.path().join("results"), "continual");
        let (_, rows) = cells.into_iter().find(|(_, r)| r[0]["seed"] == 0).unwrap();
        runs.push(rows);
    }
    let (plain, every) = (&runs[0], &runs[1]);
    let entry = |rows: &[serde_json::Value], after: usize, task: usize| {
        value_at(
            rows,
            "adapt_acc",
            serde_json::json!({ "after_task": after, "task": task }),
        )
    };
    // Two tasks: after task 0, task 0; after task 1 (the end), both.
    assert!(entry(plain, 0, 0).is_none());
    let during = entry(every, 0, 0).expect("adapted after the first task");
    let (last0, last1) = (entry(every, 1, 0).unwrap(), entry(every, 1, 1).unwrap());
    assert_eq!(entry(plain, 1, 0), Some(last0));
    assert_eq!(entry(plain, 1, 1), Some(last1));
    let forgetting = value_at(every, "adapt_forgetting", serde_json::json!({})).unwrap();
    assert_eq!(forgetting, during.max(last0) - last0);
    assert!(value_at(plain, "adapt_forgetting", serde_json::json!({})).is_none());
    // The downstream task after each task, and from scratch.
    for after in [0, 1] {
        let acc = value_at(
            every,
            "adapt_downstream_acc",
            serde_json::json!({ "after_task": after }),
        );
        assert!(
            acc.is_some_and(|a| (0.0..=100.0).contains(&a)),
            "after {after}: {acc:?}"
        );
    }
    assert!(value_at(every, "adapt_downstream_acc_scratch", serde_json::json!({})).is_some());
    // Training is untouched: every accuracy-matrix entry is the same.
    let matrix = |rows: &[serde_json::Value]| -> Vec<String> {
        rows.iter()
            .filter(|r| r["metric"] == "acc_class_il" || r["metric"] == "acc_task_il")
            .map(|r| format!("{} {}", r["coords"], r["value"]))
            .collect()
    };
    assert!(!matrix(plain).is_empty());
    assert_eq!(matrix(plain), matrix(every));
}

/// Seed 0's rows of a run of the continual smoke grid with `spec`.
fn seed0_rows(spec: &str) -> Vec<serde_json::Value> {
    let tmp = tempfile::tempdir().unwrap();
    let g = grid(tmp.path(), spec);
    let (code, out) = run(&["run", g.to_str().unwrap(), "--no-report"]);
    assert_eq!(code, 0, "{out}");
    let cells = cell_rows(&tmp.path().join("results"), "continual");
    cells
        .into_iter()
        .find(|(_, r)| r[0]["seed"] == 0)
        .unwrap()
        .1
}

/// A list of shots adapts once per value after one training: every
/// adaptation row carries `shots`, and each value's rows are the ones a
/// run with that value alone gives.
#[test]
fn a_list_of_shots_adapts_once_per_value() {
    let many = seed0_rows("{ shots: [2, 4], epochs: 2, optimizer: { lr: 0.05 } }");
    let one = seed0_rows("{ shots: 4, epochs: 2, optimizer: { lr: 0.05 } }");
    let images = |rows: &[serde_json::Value]| -> Vec<(String, f64)> {
        rows.iter()
            .filter(|r| r["metric"] == "adapt_train_images")
            .map(|r| {
                (
                    r["coords"]["shots"].to_string(),
                    r["value"].as_f64().unwrap(),
                )
            })
            .collect()
    };
    // Two tasks of 2 classes: 2 and 4 shots a class.
    assert_eq!(
        images(&many),
        vec![
            ("2".into(), 4.0),
            ("2".into(), 4.0),
            ("4".into(), 8.0),
            ("4".into(), 8.0)
        ]
    );
    let adapted = |rows: &[serde_json::Value], with_shots: bool| -> Vec<String> {
        rows.iter()
            .filter(|r| r["metric"].as_str().unwrap().starts_with("adapt_"))
            .filter(|r| !with_shots || r["coords"]["shots"] == 4)
            .map(|r| {
                let mut c = r["coords"].clone();
                if let Some(o) = c.as_object_mut() {
                    o.remove("shots");
                }
                format!("{} {} {}", r["metric"], c, r["value"])
            })
            .collect()
    };
    let (a, b) = (adapted(&many, true), adapted(&one, false));
    assert!(a.len() > 4, "{a:?}");
    assert_eq!(
        a,
        b.iter()
            .map(|s| s.replace(" null ", " {} "))
            .collect::<Vec<_>>()
    );
}

/// The random reference does not depend on the method, so a grid computes
/// it once per seed (stored under `RESULTS/shared`) and the other cells of
/// that seed read it: their rows, the reference's replayed curves
/// included, are those of the same cell run alone, where it computes the
/// reference itself.
#[test]
fn the_random_reference_is_computed_once_per_seed_and_read_bit_for_bit() {
    let spec =
        "{ mode: finetune, shots: [4, 6], epochs: 1, optimizer: { lr: 0.05 }, every_task: true }";
    let grid_with = |dir: &std::path::Path, drop_sgd: bool| {
        let mut text = smoke_grid_text("continual", dir).replace(
            "      knn: { k: 5, temperature: 0.1 }\n",
            &format!("      knn: {{ k: 5, temperature: 0.1 }}\n      adaptation: {spec}\n"),
        );
        if drop_sgd {
            text = text.replace(
                "        - { name: sgd, epochs: 1, optimizer: { lr: 0.05 } }\n",
                "",
            );
            text = text.replace(
                "    baseline: sgd           # paired tests in the report compare every method with it\n",
                "",
            );
        }
        let path = dir.join("grid.yaml");
        std::fs::write(&path, text).unwrap();
        path
    };
    let both = tempfile::tempdir().unwrap();
    let (code, out) = run(&[
        "run",
        grid_with(both.path(), false).to_str().unwrap(),
        "--no-report",
    ]);
    assert_eq!(code, 0, "{out}");
    let results = both.path().join("results");
    let shared: Vec<_> = std::fs::read_dir(results.join("shared"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(shared.len(), 2, "one reference per seed: {shared:?}");
    assert!(
        shared.iter().all(|f| f.starts_with("random-reference-")),
        "{shared:?}"
    );
    let read = out
        .matches("random reference: read from the grid's shared results")
        .count();
    assert_eq!(read, 2, "the second method of each seed reads it: {out}");
    let cells = cell_rows(&results, "continual");
    assert_eq!(cells.len(), 4);
    // Both methods of a seed carry the same reference rows.
    let scratch = |rows: &[serde_json::Value]| -> Vec<String> {
        rows.iter()
            .filter(|r| {
                [
                    "adapt_acc_scratch",
                    "acc_class_il_random",
                    "acc_task_il_random",
                ]
                .contains(&r["metric"].as_str().unwrap())
            })
            .map(|r| format!("{} {} {}", r["metric"], r["coords"], r["value"]))
            .collect()
    };
    for (m, rows) in &cells {
        assert_eq!(
            scratch(rows).len(),
            2 * 2 + 2,
            "{m}: 2 tasks x 2 shots, 2 random"
        );
    }
    let seed_of = |rows: &[serde_json::Value]| rows[0]["seed"].as_u64().unwrap();
    for seed in [0, 1] {
        let of_seed: Vec<_> = cells.iter().filter(|(_, r)| seed_of(r) == seed).collect();
        assert_eq!(
            scratch(&of_seed[0].1),
            scratch(&of_seed[1].1),
            "seed {seed}"
        );
    }

    let alone = tempfile::tempdir().unwrap();
    let (code, out) = run(&[
        "run",
        grid_with(alone.path(), true).to_str().unwrap(),
        "--no-report",
    ]);
    assert_eq!(code, 0, "{out}");
    assert!(
        !out.contains("read from the grid's shared results"),
        "{out}"
    );
    let alone_cells = cell_rows(&alone.path().join("results"), "continual");
    let lp_ft: Vec<_> = cells.into_iter().filter(|(m, _)| m == "lp-ft").collect();
    assert_eq!(lp_ft.len(), 2);
    let (read_rows, computed_rows) = (reproducible(&lp_ft), reproducible(&alone_cells));
    let sorted = |cells: Vec<(String, Vec<String>)>| {
        let mut v: Vec<Vec<String>> = cells
            .into_iter()
            .map(|(_, mut rows)| {
                rows.sort();
                rows
            })
            .collect();
        v.sort();
        v
    };
    let (read_rows, computed_rows) = (sorted(read_rows), sorted(computed_rows));
    assert!(
        read_rows[0]
            .iter()
            .any(|r| r.contains("curve_loss") && r.contains("scratch"))
    );
    assert_eq!(read_rows, computed_rows);
}
