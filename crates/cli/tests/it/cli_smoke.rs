//! End-to-end: the `reusebench` binary on the smoke grid and on broken grids.

use std::path::{Path, PathBuf};

use crate::common::{bin, cell_dir_of, convert_fixture, repo, run};

/// The smoke grid with its results redirected into `dir`.
fn smoke_grid(dir: &Path) -> PathBuf {
    let text = std::fs::read_to_string(repo().join("experiments/smoke/continual.yaml")).unwrap();
    let text = text.replace(
        "results: results/smoke-continual",
        &format!("results: {}", dir.join("results").display()),
    );
    let path = dir.join("grid.yaml");
    std::fs::write(&path, text).unwrap();
    path
}

/// Every stored row of every cell, less the timing rows (epoch seconds),
/// which differ between two runs of the same cell by nature.
fn rows_of(results: &Path) -> Vec<serde_json::Value> {
    let mut all = Vec::new();
    let mut dirs: Vec<_> = std::fs::read_dir(results.join("cells"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    dirs.sort();
    for d in dirs {
        let text = std::fs::read_to_string(d.join("rows.json")).unwrap();
        let rows: Vec<serde_json::Value> = serde_json::from_str(&text).unwrap();
        all.extend(rows.into_iter().filter(|r| {
            !reusebench_results::names::TIMING.contains(&r["metric"].as_str().unwrap_or(""))
        }));
    }
    all
}

#[test]
fn smoke_grid_runs_reports_resumes_and_is_deterministic() {
    let tmp = tempfile::tempdir().unwrap();
    let grid = smoke_grid(tmp.path());
    let g = grid.to_str().unwrap();
    let results = tmp.path().join("results");

    let (code, out) = run(&["validate", g]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("5 cell(s)"), "{out}");

    let (code, out) = run(&["run", g]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("5 cell(s) run, 0 skipped"), "{out}");
    for f in ["summary.md", "summary.csv", "rows.parquet", "grid.json"] {
        assert!(results.join(f).is_file(), "{f} missing\n{out}");
    }
    let md = std::fs::read_to_string(results.join("summary.md")).unwrap();
    assert!(md.contains("| sgd |") && md.contains("| lp-ft |"), "{md}");
    assert!(
        md.contains("avg_acc_class_il")
            && md.contains("forgetting_class_il")
            && md.contains("knn_acc"),
        "{md}"
    );
    let plots: Vec<_> = std::fs::read_dir(results.join("plots")).unwrap().collect();
    assert!(plots.len() >= 5, "plots: {plots:?}");

    // Every continual cell has the full matrix and the scalars, each once.
    let rows = rows_of(&results);
    let cells: std::collections::HashSet<&str> =
        rows.iter().map(|r| r["cell"].as_str().unwrap()).collect();
    assert_eq!(cells.len(), 5);
    let class_il = rows
        .iter()
        .filter(|r| r["metric"] == "acc_class_il")
        .count();
    assert_eq!(class_il, 4 * 3, "2 tasks -> R has 3 entries per cell");
    for r in &rows {
        assert!(r["experiment"].is_string() && r["method"].is_string() && r["seed"].is_u64());
        if r["experiment"] == "continual" {
            assert!(
                r["axes"]["method"].is_string() && r["axes"]["seed"].is_u64(),
                "{r}"
            );
        }
    }

    // Every training stage recorded its curve: loss, learning rate and
    // seconds per epoch, at (task, stage, epoch) in the continual cells.
    let curve = rows
        .iter()
        .find(|r| r["metric"] == "curve_loss" && r["experiment"] == "continual")
        .expect("continual cells record curves");
    assert!(
        curve["coords"]["task"].is_u64()
            && curve["coords"]["stage"].is_string()
            && curve["coords"]["epoch"].is_u64(),
        "{curve}"
    );
    assert!(
        rows.iter()
            .any(|r| r["metric"] == "curve_lr" && r["experiment"] == "pretrain")
    );
    assert!(results.join("plots/curves-continual.svg").is_file());

    // Running again skips every cell.
    let (code, out) = run(&["run", g]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("0 cell(s) run, 5 skipped"), "{out}");

    // Same seed, same machine: --force reproduces every metric exactly.
    let (code, out) = run(&["run", g, "--force", "--no-report"]);
    assert_eq!(code, 0, "{out}");
    let again = rows_of(&results);
    assert_eq!(
        rows, again,
        "metrics differ between two runs with the same seeds"
    );

    // An interrupted cell (status running, no rows) is rerun; done cells are kept.
    let victim = cell_dir_of(&results, "continual");
    std::fs::remove_file(victim.join("rows.json")).unwrap();
    let status = std::fs::read_to_string(victim.join("status.json")).unwrap();
    std::fs::write(
        victim.join("status.json"),
        status.replace("\"done\"", "\"running\""),
    )
    .unwrap();
    let (code, out) = run(&["run", g]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("1 cell(s) run, 4 skipped"), "{out}");
    assert_eq!(rows_of(&results), rows, "resume lost or duplicated rows");
}

#[test]
fn failing_cell_is_recorded_and_the_grid_goes_on() {
    let tmp = tempfile::tempdir().unwrap();
    let grid = smoke_grid(tmp.path());
    // An absurd learning rate makes the sgd cells diverge; lp-ft cells still run.
    let (code, out) = run(&[
        "run",
        grid.to_str().unwrap(),
        "--set",
        "seed=0",
        "--set",
        "continual:method=[{name: sgd, epochs: 1, optimizer: {lr: 1.0e30}}, {name: lp-ft, lp_epochs: 1, ft_epochs: 1, lp_optimizer: {lr: 0.1}, ft_optimizer: {lr: 0.05}}]",
    ]);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("1 failed"), "{out}");
    assert!(
        out.contains("non-finite loss") || out.contains("diverged") || out.contains("infinite"),
        "{out}"
    );
    let md = std::fs::read_to_string(tmp.path().join("results/summary.md")).unwrap();
    assert!(md.contains("Failed cells"), "{md}");
    assert!(md.contains("| lp-ft |"), "{md}");
    // The failed cell's status keeps its error chain as a list, each
    // message once, and names the cell by what varies.
    let failed: Vec<serde_json::Value> = std::fs::read_dir(tmp.path().join("results/cells"))
        .unwrap()
        .map(|e| {
            let text = std::fs::read_to_string(e.unwrap().path().join("status.json")).unwrap();
            serde_json::from_str::<serde_json::Value>(&text).unwrap()
        })
        .filter(|s| s["state"] == "failed")
        .collect();
    assert_eq!(failed.len(), 1);
    let errors = failed[0]["errors"].as_array().expect("errors is a list");
    assert!(!errors.is_empty());
    assert_eq!(failed[0]["label"], "sgd", "{}", failed[0]);
    let reason = failed[0]["reason"].as_str().unwrap();
    for e in errors {
        assert_eq!(reason.matches(e.as_str().unwrap()).count(), 1, "{reason}");
    }
}

#[test]
fn bad_grids_are_rejected_before_any_work() {
    let tmp = tempfile::tempdir().unwrap();
    let grid = smoke_grid(tmp.path());
    let text = std::fs::read_to_string(&grid).unwrap();
    let bad = tmp.path().join("bad.yaml");
    std::fs::write(
        &bad,
        text.replace(
            "      classes_per_task: 2",
            "      classes_per_task: 2\n      clases: [1]",
        ),
    )
    .unwrap();
    let (code, out) = run(&["run", bad.to_str().unwrap()]);
    assert_eq!(code, 2, "{out}");
    assert!(out.contains("bad.yaml:"), "{out}");
    assert!(out.contains("clases"), "{out}");
    assert!(
        !tmp.path().join("results").exists(),
        "nothing may run for an invalid grid"
    );

    let (code, out) = run(&["validate", grid.to_str().unwrap(), "--device", "cuda:0"]);
    if !cfg!(feature = "cuda") {
        assert_eq!(code, 2, "{out}");
        assert!(out.contains("--features cuda"), "{out}");
    }

    let (code, out) = run(&[
        "validate",
        tmp.path().join("missing.yaml").to_str().unwrap(),
    ]);
    assert_eq!(code, 2);
    assert!(out.contains("missing.yaml"), "{out}");
}

#[test]
fn killed_mid_grid_resumes_without_losing_or_duplicating_rows() {
    // Reference: one uninterrupted run.
    let full = tempfile::tempdir().unwrap();
    let grid = smoke_grid(full.path());
    let (code, out) = run(&["run", grid.to_str().unwrap(), "--no-report"]);
    assert_eq!(code, 0, "{out}");
    let reference = rows_of(&full.path().join("results"));

    // Same grid, killed (SIGKILL) as soon as two cells are done.
    let tmp = tempfile::tempdir().unwrap();
    let grid = smoke_grid(tmp.path());
    let cells = tmp.path().join("results/cells");
    let mut child = bin()
        .args(["run", grid.to_str().unwrap(), "--no-report"])
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let done = || {
        std::fs::read_dir(&cells)
            .map(|rd| {
                rd.filter(|e| {
                    let s = std::fs::read_to_string(e.as_ref().unwrap().path().join("status.json"))
                        .unwrap_or_default();
                    s.contains("\"done\"")
                })
                .count()
            })
            .unwrap_or(0)
    };
    let start = std::time::Instant::now();
    while done() < 2 && start.elapsed().as_secs() < 120 {
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    let finished_early = child.try_wait().unwrap().is_some();
    child.kill().ok();
    child.wait().unwrap();
    let before = done();
    let (code, out) = run(&["run", grid.to_str().unwrap(), "--no-report"]);
    assert_eq!(code, 0, "{out}");
    if !finished_early {
        assert!(before < 5, "the kill should have interrupted the grid");
        assert!(out.contains(&format!("{before} skipped")), "{out}");
    }
    let mut resumed = rows_of(&tmp.path().join("results"));
    let mut reference = reference;
    let key = |r: &serde_json::Value| r.to_string();
    resumed.sort_by_key(key);
    reference.sort_by_key(key);
    assert_eq!(
        resumed, reference,
        "rows lost, duplicated or changed by the kill"
    );
}

/// What `validate` must catch before anything runs: a task split that the
/// dataset's class count cannot make, and a checkpoint of another width.
#[test]
fn validate_rejects_impossible_splits_and_mismatched_checkpoints() {
    let tmp = tempfile::tempdir().unwrap();
    let grid = smoke_grid(tmp.path());
    let text = std::fs::read_to_string(&grid).unwrap();
    let line_of =
        |text: &str, needle: &str| text.lines().position(|l| l.contains(needle)).unwrap() + 1;
    for (value, expected) in [
        ("0", "must be >= 1"),
        ("3", "cannot be split into tasks of 3"),
    ] {
        let bad = tmp.path().join(format!("split-{value}.yaml"));
        let changed = text.replace("classes_per_task: 2", &format!("classes_per_task: {value}"));
        std::fs::write(&bad, &changed).unwrap();
        let (code, out) = run(&["validate", bad.to_str().unwrap()]);
        let line = line_of(&changed, "classes_per_task:");
        assert_eq!(code, 2, "{out}");
        assert!(
            out.contains(&format!("split-{value}.yaml:{line}"))
                && out.contains("key `classes_per_task`")
                && out.contains(expected),
            "{out}"
        );
    }
    assert!(!tmp.path().join("results").exists(), "nothing ran");

    // A width-4 checkpoint where the grid asks for width 8.
    let ckpt = tmp.path().join("tv/resnet18_w4.safetensors");
    let (code, out) = convert_fixture("resnet18", &ckpt);
    assert_eq!(code, 0, "{out}");
    let text = std::fs::read_to_string(repo().join("experiments/smoke/torchvision.yaml"))
        .unwrap()
        .replace(
            "results: results/smoke-torchvision",
            &format!("results: {}", tmp.path().join("tv").display()),
        )
        .replace(
            "weights: crates/core/tests/fixtures",
            &format!("weights: {}/crates/core/tests/fixtures", repo().display()),
        );
    // The converted experiment (the second `width: 4`) asks for width 8.
    let at = text.match_indices("width: 4").nth(1).unwrap().0;
    let wide = format!("{}width: 8{}", &text[..at], &text[at + "width: 4".len()..]);
    let bad = tmp.path().join("wide.yaml");
    std::fs::write(&bad, &wide).unwrap();
    let (code, out) = run(&["validate", bad.to_str().unwrap()]);
    assert_eq!(code, 2, "{out}");
    let line = wide
        .lines()
        .enumerate()
        .filter(|(_, l)| l.contains("checkpoint:"))
        .map(|(i, _)| i + 1)
        .next()
        .unwrap();
    assert!(
        out.contains(&format!("wide.yaml:{line}"))
            && out.contains("key `backbone.checkpoint`")
            && out.contains("resnet18_w4.safetensors")
            && out.contains("width 4")
            && out.contains("width 8"),
        "{out}"
    );
}

#[test]
fn torchvision_weights_convert_and_start_a_grid() {
    let tmp = tempfile::tempdir().unwrap();
    let results = tmp.path().join("results");
    let converted = results.join("resnet18_w4.safetensors");
    let (code, out) = convert_fixture("resnet18", &converted);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("100 tensor(s) applied"), "{out}");
    assert!(out.contains("head dropped: fc.bias, fc.weight"), "{out}");
    assert!(converted.is_file());

    // The wrong architecture: an error naming the keys, nothing written.
    let wrong = tmp.path().join("wrong.safetensors");
    let (code, out) = convert_fixture("resnet50", &wrong);
    assert_eq!(code, 2, "{out}");
    assert!(
        out.contains("resnet18_w4.pth") && out.contains("layer1.0.conv3.weight"),
        "{out}"
    );
    assert!(!wrong.exists());

    // The grid: from the .pth directly and from the converted file. Same
    // starting weights, same seed: the same numbers, bit for bit.
    let text = std::fs::read_to_string(repo().join("experiments/smoke/torchvision.yaml"))
        .unwrap()
        .replace(
            "results: results/smoke-torchvision",
            &format!("results: {}", results.display()),
        )
        .replace(
            "weights: crates/core/tests/fixtures",
            &format!("weights: {}/crates/core/tests/fixtures", repo().display()),
        );
    let grid = tmp.path().join("grid.yaml");
    std::fs::write(&grid, text).unwrap();
    let (code, out) = run(&["run", grid.to_str().unwrap()]);
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains("100 tensor(s) applied"),
        "the load report is shown: {out}"
    );
    let rows = rows_of(&results);
    let values = |exp: &str| -> Vec<(String, f64)> {
        rows.iter()
            .filter(|r| r["experiment"] == exp)
            .map(|r| {
                (
                    r["metric"].as_str().unwrap().to_string(),
                    r["value"].as_f64().unwrap(),
                )
            })
            .collect()
    };
    let (a, b) = (values("from-pth"), values("from-converted"));
    assert!(!a.is_empty());
    assert_eq!(a, b);
}

/// A smoke grid from `experiments/smoke/` with its results (and, where it
/// reads a generated fixture, its data folder) redirected into `dir`.
fn redirected(name: &str, dir: &Path, replacements: &[(&str, &Path)]) -> PathBuf {
    let mut text = std::fs::read_to_string(repo().join("experiments/smoke").join(name)).unwrap();
    for (from, to) in replacements {
        text = text.replace(from, to.to_str().unwrap());
    }
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path
}

#[test]
fn every_continual_method_runs_end_to_end() {
    let tmp = tempfile::tempdir().unwrap();
    let results = tmp.path().join("results");
    let grid = redirected(
        "methods.yaml",
        tmp.path(),
        &[("results/smoke-methods", &results)],
    );
    let (code, out) = run(&["run", grid.to_str().unwrap()]);
    assert_eq!(code, 0, "{out}");
    let md = std::fs::read_to_string(results.join("summary.md")).unwrap();
    for method in [
        "sgd",
        "lp-ft",
        "mas",
        "ewc",
        "lwf",
        "er",
        "der++",
        "l2-sp",
        "side-tuning",
        "side-tuning-lifelong",
        "joint",
        "cumulative",
        "mas+lp",
        "lwf+lp",
    ] {
        assert!(
            md.contains(&format!("| {method} |")),
            "{method} missing:\n{md}"
        );
    }
    let rows = rows_of(&results);
    let scalar = |method: &str, metric: &str| {
        rows.iter()
            .find(|r| r["method"] == method && r["metric"] == metric && r["coords"].is_null())
            .and_then(|r| r["value"].as_f64())
            .unwrap_or_else(|| panic!("{method} {metric}"))
    };
    for method in ["sgd", "mas", "joint", "side-tuning"] {
        let acc = scalar(method, "adapt_acc");
        assert!((0.0..=100.0).contains(&acc), "{method} adapt_acc {acc}");
        assert!(scalar(method, "adapt_gain").is_finite());
        // GEM's forward transfer, against the random model of each task.
        assert!(scalar(method, "fwt_class_il").is_finite());
        assert!(scalar(method, "fwt_task_il").is_finite());
    }
    // Joint trains once, after the last task, on every task's data (Mammoth):
    // its only training curve is at the last task, and it still has a full
    // accuracy matrix. Cumulative trains at every task.
    let joint_entries = rows
        .iter()
        .filter(|r| r["method"] == "joint" && r["metric"] == "acc_class_il")
        .count();
    assert_eq!(joint_entries, 6, "3 tasks: 1 + 2 + 3 matrix entries");
    let curve_tasks = |method: &str| {
        let mut t: Vec<u64> = rows
            .iter()
            .filter(|r| {
                r["method"] == method
                    && r["metric"] == "curve_loss"
                    && r["coords"]["stage"] == "fine-tune"
            })
            .map(|r| r["coords"]["task"].as_u64().unwrap())
            .collect();
        t.dedup();
        t
    };
    assert_eq!(
        curve_tasks("joint"),
        [2],
        "joint trains after the last task only"
    );
    // Lifelong side-tuning evaluates each task with its own side network
    // and head, frozen once learned: its task-IL (and kNN) entries of a
    // task do not change after it, for every later row; the shared
    // variant's do.
    let entries = |method: &str, metric: &str| -> Vec<(u64, u64, u64)> {
        rows.iter()
            .filter(|r| {
                r["experiment"] == "continual"
                    && r["method"] == method
                    && r["metric"] == metric
                    && !r["coords"]["after_task"].is_null()
            })
            .map(|r| {
                (
                    r["coords"]["after_task"].as_u64().unwrap(),
                    r["coords"]["task"].as_u64().unwrap(),
                    r["value"].as_f64().unwrap().to_bits(),
                )
            })
            .collect()
    };
    let constant_columns = |method: &str, metric: &str| {
        let e = entries(method, metric);
        assert!(!e.is_empty(), "{method} {metric}");
        e.iter().all(|&(i, j, v)| {
            e.iter()
                .find(|&&(i2, j2, _)| i2 == j && j2 == j)
                .is_some_and(|&(_, _, own)| i < j || own == v)
        })
    };
    assert!(constant_columns("side-tuning-lifelong", "acc_task_il"));
    assert!(constant_columns("side-tuning-lifelong", "knn_acc"));
    // Adaptation on a few images per class: 4 of each of a task's 2 classes
    // where the grid says so, every training image elsewhere: 11 per class
    // (12, less the one of each class held out for validation).
    let images = |exp: &str| -> Vec<f64> {
        rows.iter()
            .filter(|r| r["experiment"] == exp && r["metric"] == "adapt_train_images")
            .map(|r| r["value"].as_f64().unwrap())
            .collect()
    };
    assert!(images("continual-no-augment").iter().all(|&n| n == 8.0));
    assert!(images("continual").iter().all(|&n| n == 22.0));
    assert!(!images("continual").is_empty() && !images("continual-no-augment").is_empty());
    assert_eq!(curve_tasks("cumulative"), [0, 1, 2]);
    assert!(
        rows.iter().any(|r| r["experiment"] == "continual-no-augment" && r["metric"] == "avg_acc_class_il"),
        "side-tuning on cached base features ran"
    );

    // The paper-layout table and the first-task figure.
    let table = std::fs::read_to_string(results.join("comparison.md")).unwrap();
    assert!(
        table.starts_with("# Comparison")
            && table.contains("| method | continual: avg acc | continual: forgetting | continual: kNN acc | continual: adapt acc | continual-no-augment: avg acc |"),
        "{table}"
    );
    assert!(table.contains("| side-tuning |"), "{table}");
    let svg = std::fs::read_to_string(results.join("plots/first-task-continual.svg")).unwrap();
    for method in ["sgd", "der++", "joint"] {
        assert!(
            svg.lines().any(|l| l.trim() == method),
            "{method} has no line in the first-task plot"
        );
    }
    let out_md = tmp.path().join("both.md");
    let (code, out) = run(&[
        "compare",
        results.to_str().unwrap(),
        results.to_str().unwrap(),
        "-o",
        out_md.to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "{out}");
    let both = std::fs::read_to_string(&out_md).unwrap();
    assert_eq!(
        both.matches("results/continual: kNN acc").count(),
        2,
        "{both}"
    );
}

/// Runs the shipped smoke grid `name` with its results in `results` and
/// its data folder (`data.0` in the grid) at `data.1`; it must succeed.
fn run_redirected(name: &str, dir: &Path, results: &Path, data: (&str, &Path)) {
    let stored = format!("results/smoke-{name}");
    let grid = redirected(&format!("{name}.yaml"), dir, &[(&stored, results), data]);
    let (code, out) = run(&["run", grid.to_str().unwrap()]);
    assert_eq!(code, 0, "{out}");
}

#[test]
fn fmow_and_tiny_imagenet_fixtures_run_through_the_cli() {
    let tmp = tempfile::tempdir().unwrap();
    let fmow = tmp.path().join("fmow");
    let tiny = tmp.path().join("tiny-imagenet-200");
    for (name, dir) in [("fmow", &fmow), ("tiny-imagenet", &tiny)] {
        let (code, out) = run(&["make-fixture", name, dir.to_str().unwrap()]);
        assert_eq!(code, 0, "{out}");
    }
    let results = tmp.path().join("fmow-results");
    let data = ("datasets/fixtures/fmow", fmow.as_path());
    run_redirected("fmow", tmp.path(), &results, data);
    let rows = rows_of(&results);
    for metric in [
        "worst_region_acc",
        "worst_year_acc",
        "acc_all",
        "avg_acc_domain_il",
    ] {
        assert!(
            rows.iter().any(|r| r["metric"] == metric),
            "{metric} missing"
        );
    }
    // Region tasks on the official split test on 2016+ images only.
    let mut years: Vec<u64> = rows
        .iter()
        .filter(|r| r["experiment"] == "by-region" && r["metric"] == "acc_by_year")
        .filter_map(|r| r["coords"]["year"].as_u64())
        .collect();
    years.sort();
    years.dedup();
    assert_eq!(years, [2016, 2017]);
    assert!(
        rows.iter()
            .any(|r| r["metric"] == "acc_by_region" && r["coords"]["region"].is_string()),
        "regions are a coordinate, not part of the metric name"
    );
    // The worst region is the worst of the named regions: WILDS leaves
    // "Other" out (unit-tested in the continual crate on hand-made sets).
    for cell in rows
        .iter()
        .filter(|r| r["metric"] == "worst_region_acc")
        .map(|r| r["cell"].as_str().unwrap())
    {
        fn of_cell<'a>(
            rows: &'a [serde_json::Value],
            cell: &'a str,
            metric: &'a str,
        ) -> impl Iterator<Item = &'a serde_json::Value> {
            rows.iter()
                .filter(move |r| r["cell"] == cell && r["metric"] == metric)
        }
        let regions: Vec<(String, f64)> = of_cell(&rows, cell, "acc_by_region")
            .map(|r| {
                (
                    r["coords"]["region"].as_str().unwrap().to_string(),
                    r["value"].as_f64().unwrap(),
                )
            })
            .collect();
        let want = regions
            .iter()
            .filter(|(r, _)| r != "Other")
            .map(|(_, v)| *v)
            .fold(f64::INFINITY, f64::min);
        let got = of_cell(&rows, cell, "worst_region_acc").next().unwrap()["value"]
            .as_f64()
            .unwrap();
        assert_eq!(got, want, "{regions:?}");
    }
    assert!(
        !rows.iter().any(|r| r["metric"] == "acc_task_il"),
        "no task-IL in domain-incremental runs"
    );

    let results = tmp.path().join("tiny-results");
    let data = ("datasets/fixtures/tiny-imagenet-200", tiny.as_path());
    run_redirected("tiny-imagenet", tmp.path(), &results, data);
    assert!(
        tiny.join(".reusebench-cache").is_dir(),
        "the decode cache is written beside the data"
    );
    assert!(rows_of(&results).iter().any(|r| r["metric"] == "knn_acc"));
}

/// Every grid in `experiments/` parses and validates; the only problems
/// allowed are data or weights files that this machine does not have.
#[test]
fn every_shipped_grid_is_well_formed() {
    let mut grids = Vec::new();
    for dir in ["experiments", "experiments/smoke"] {
        for entry in std::fs::read_dir(repo().join(dir)).unwrap() {
            let path = entry.unwrap().path();
            if path.extension().is_some_and(|e| e == "yaml") {
                grids.push(path);
            }
        }
    }
    assert!(grids.len() >= 10, "{grids:?}");
    for grid in grids {
        let (code, out) = run(&["validate", grid.to_str().unwrap(), "--device", "cpu"]);
        if code != 0 {
            let problems: Vec<&str> = out
                .lines()
                .filter(|l| !l.starts_with("error:") && !l.trim().is_empty())
                .collect();
            assert!(
                !problems.is_empty()
                    && problems
                        .iter()
                        .all(|l| l.contains("does not exist (and no earlier experiment writes it)")),
                "{}: {out}",
                grid.display()
            );
        }
    }
}

/// The CPU real-data grids read the official layout under `{data}` (where
/// `data fetch` puts the files) and validate with `--data-root` at the
/// shared subsets, which are the same cut of those files.
#[test]
fn cpu_grids_read_the_official_layout_that_the_shared_subsets_have() {
    let shared = repo().join("../shared/datasets");
    if !shared.is_dir() {
        eprintln!("skipped: ../shared/datasets is absent");
        return;
    }
    let mut checked = 0;
    for entry in std::fs::read_dir(repo().join("experiments")).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().to_string();
        if !name.ends_with("-cpu.yaml") {
            continue;
        }
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(
            !text.contains("-subset/"),
            "{name} names a subset folder under {{data}}"
        );
        let root = if name.starts_with("tiny-imagenet") {
            shared.join("tiny-imagenet-200-subset")
        } else {
            shared.join("cifar-10-subset")
        };
        let (code, out) = run(&[
            "validate",
            path.to_str().unwrap(),
            "--data-root",
            root.to_str().unwrap(),
        ]);
        assert_eq!(code, 0, "{name}: {out}");
        checked += 1;
    }
    assert!(checked >= 7, "{checked} CPU grids");
}

/// A grid that changed since its last run reports its own cells only; the
/// folders of the old version stay on disk but are not averaged in.
#[test]
fn a_changed_grid_reports_only_its_current_cells() {
    let tmp = tempfile::tempdir().unwrap();
    let grid = smoke_grid(tmp.path());
    let g = grid.to_str().unwrap();
    let (code, out) = run(&["run", g]);
    assert_eq!(code, 0, "{out}");
    let (code, out) = run(&["run", g, "--set", "continual:knn.k=3"]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("4 cell(s) run, 1 skipped"), "{out}");
    let md = std::fs::read_to_string(tmp.path().join("results/summary.md")).unwrap();
    assert!(
        md.contains("4 cell folder(s) under cells/ are not part of the current grid"),
        "{md}"
    );
    let sgd = md.lines().find(|l| l.starts_with("| sgd |")).unwrap();
    assert!(sgd.ends_with("| 2 |"), "two seeds, not four: {sgd}");
}

#[test]
fn bench_times_the_train_step_and_inference() {
    for (flag, workload) in [(None, "train_step"), (Some("--inference"), "inference")] {
        let mut args = vec![
            "bench", "--width", "4", "--batch", "2", "--warmup", "1", "--steps", "1",
        ];
        args.extend(flag);
        let (code, text) = run(&args);
        assert_eq!(code, 0, "{text}");
        let line = text.lines().last().unwrap();
        let json: serde_json::Value = serde_json::from_str(line).unwrap();
        assert_eq!(json["workload"], workload, "{line}");
        assert!(json["images_per_second"].as_f64().unwrap() > 0.0, "{line}");
    }
    // A device this machine or build cannot serve: a clear error, no panic.
    let (code, text) = run(&["bench", "--device", "cuda:7"]);
    assert_ne!(code, 0);
    assert!(
        text.contains("cuda:7") && !text.contains("panicked"),
        "{text}"
    );
}

/// `--device cuda:0` where it cannot run: without the `cuda` feature, an
/// error that says how to build it; in a `cuda` build on a machine without
/// an NVIDIA GPU or driver, an error naming the device. Either way from
/// `validate` and from `run` before any work, never a panic.
#[test]
fn a_cuda_device_that_cannot_run_fails_before_any_work() {
    let gpus = reusebench_core::device::nvidia_gpus().unwrap_or(0);
    if cfg!(feature = "cuda") && gpus > 0 {
        eprintln!("skipped: this machine has {gpus} NVIDIA GPU(s), so cuda:0 can run");
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let grid = smoke_grid(tmp.path());
    for command in ["validate", "run"] {
        let (code, out) = run(&[command, grid.to_str().unwrap(), "--device", "cuda:0"]);
        assert_eq!(code, 2, "{command}: {out}");
        assert!(out.contains("cuda:0"), "{command}: {out}");
        assert!(!out.contains("panicked"), "{command}: {out}");
        let why = if cfg!(feature = "cuda") {
            "NVIDIA"
        } else {
            "--features cuda"
        };
        assert!(out.contains(why), "{command}: {out}");
    }
    assert!(
        !tmp.path().join("results").exists(),
        "nothing may run on a device that cannot"
    );
}
