//! The report on a hand-written results store: numbers checked by hand.
//! The rows are written as the first results schema wrote them (top-level
//! `after_task` / `task`), which must still load.

use std::path::{Path, PathBuf};

use serde_json::json;

/// (metric, value, optional (after_task, task)).
type Row<'a> = (&'a str, f64, Option<(usize, usize)>);

/// A cell folder of experiment `cl` with its `status.json`; the folder.
fn write_status(results: &Path, name: &str, state: &str, method: &str, seed: u64) -> PathBuf {
    let dir = results.join("cells").join(name);
    std::fs::create_dir_all(&dir).unwrap();
    let status = json!({"state": state, "experiment": "cl", "protocol": "continual", "method": method,
        "seed": seed, "seconds": 1.0, "device": "cpu", "reason": if state == "failed" { json!("non-finite loss") } else { json!(null) }});
    std::fs::write(dir.join("status.json"), status.to_string()).unwrap();
    dir
}

/// The report of `results` with `sgd` as experiment `cl`'s baseline: its `summary.md`.
fn report_with_sgd_baseline(results: &Path) -> String {
    std::fs::write(
        results.join("grid.json"),
        r#"{"name": "t", "baselines": {"cl": "sgd"}}"#,
    )
    .unwrap();
    let files = reusebench_report::write_report(results).unwrap();
    std::fs::read_to_string(&files.markdown).unwrap()
}

fn write_cell(results: &Path, name: &str, state: &str, method: &str, seed: u64, rows: &[Row]) {
    let dir = write_status(results, name, state, method, seed);
    if state != "done" {
        return;
    }
    let rows: Vec<_> = rows
        .iter()
        .map(|(m, v, ij)| {
            let mut r = json!({"cell": name, "experiment": "cl", "protocol": "continual", "method": method,
                "seed": seed, "axes": {"method": method, "seed": seed.to_string(), "backbone.width": "20"},
                "metric": m, "value": v});
            if let Some((i, j)) = ij {
                r["after_task"] = json!(i);
                r["task"] = json!(j);
            }
            r
        })
        .collect();
    std::fs::write(dir.join("rows.json"), serde_json::to_string(&rows).unwrap()).unwrap();
}

/// Three seeds of sgd and lp-ft, sgd named as the baseline: lp-ft's
/// average accuracy is higher on every seed (significant), its forgetting
/// differs by -1, +1, 0 (not significant).
#[test]
fn methods_are_compared_with_the_baseline_on_the_same_seeds() {
    let tmp = tempfile::tempdir().unwrap();
    let r = tmp.path();
    for seed in 0..3u64 {
        let s = seed as f64;
        write_cell(
            r,
            &format!("cl-s{seed}"),
            "done",
            "sgd",
            seed,
            &[
                ("avg_acc_class_il", 60.0 + s, None),
                ("forgetting_class_il", 20.0, None),
            ],
        );
        write_cell(
            r,
            &format!("cl-l{seed}"),
            "done",
            "lp-ft",
            seed,
            &[
                ("avg_acc_class_il", 70.0 + 2.0 * s, None),
                (
                    "forgetting_class_il",
                    20.0 + [-1.0, 1.0, 0.0][seed as usize],
                    None,
                ),
            ],
        );
    }
    let md = report_with_sgd_baseline(r);
    // Δ avg acc = 10, 11, 12: mean 11, std 1, half-width 4.303 / sqrt(3) = 2.48.
    assert!(
        md.contains("### cl: paired against `sgd` (same seeds)"),
        "{md}"
    );
    assert!(
        md.contains("| lp-ft | 20 | +11.00 [+8.52, +13.48] * | +0.00 [-2.48, +2.48] | 3 |"),
        "{md}"
    );
    let table = std::fs::read_to_string(r.join("comparison.md")).unwrap();
    assert!(table.contains("(baseline)"), "{table}");
    let lp = table.lines().find(|l| l.starts_with("| lp-ft")).unwrap();
    // The forgetting difference is marked not significant, the accuracy one is not marked.
    assert!(
        lp.contains("(n.s.)") && lp.matches("(n.s.)").count() == 1,
        "{lp}"
    );
}

#[test]
fn aggregates_over_seeds_and_lists_failures() {
    let tmp = tempfile::tempdir().unwrap();
    let r = tmp.path();
    let matrix = |a: f64| {
        vec![
            ("acc_class_il", a, Some((0, 0))),
            ("acc_class_il", a - 10.0, Some((1, 0))),
            ("acc_class_il", 70.0, Some((1, 1))),
        ]
    };
    let mut sgd0 = matrix(90.0);
    sgd0.extend([
        ("avg_acc_class_il", 60.0, None),
        ("forgetting_class_il", 10.0, None),
    ]);
    let mut sgd1 = matrix(80.0);
    sgd1.extend([
        ("avg_acc_class_il", 64.0, None),
        ("forgetting_class_il", 14.0, None),
    ]);
    write_cell(r, "cl-a", "done", "sgd", 0, &sgd0);
    write_cell(r, "cl-b", "done", "sgd", 1, &sgd1);
    write_cell(
        r,
        "cl-c",
        "done",
        "lp-ft",
        0,
        &[("avg_acc_class_il", 70.0, None)],
    );
    write_cell(r, "cl-d", "failed", "lp-ft", 1, &[]);
    write_cell(r, "cl-e", "running", "lp-ft", 2, &[]);

    let files = reusebench_report::write_report(r).unwrap();
    assert_eq!(files.cells_done, 3);
    assert_eq!(files.cells_failed, 1);
    let md = std::fs::read_to_string(&files.markdown).unwrap();
    // sgd: mean(60, 64) = 62, sample std = 2.83; forgetting mean 12 ± 2.83
    assert!(
        md.contains(
            "| sgd | 20 | 62.00 ± 2.83 [36.59, 87.41] | 12.00 ± 2.83 [-13.41, 37.41] | 2 |"
        ),
        "{md}"
    );
    assert!(md.contains("| lp-ft | 20 | 70.00 | – | 1 |"), "{md}");
    assert!(
        md.contains("## Failed cells") && md.contains("non-finite loss"),
        "{md}"
    );
    let csv = std::fs::read_to_string(&files.csv).unwrap();
    assert!(
        csv.lines().next().unwrap().starts_with(
            "experiment,protocol,method,backbone.width,metric,after_task,task,mean,std,n"
        ),
        "{csv}"
    );
    assert!(
        csv.contains("cl,continual,sgd,20,avg_acc_class_il,,,62.0,"),
        "{csv}"
    );
    // Matrix entries are averaged point by point: R[1][0] over the seeds.
    assert!(
        csv.contains("cl,continual,sgd,20,acc_class_il,1,0,75.0,"),
        "{csv}"
    );
    assert!(std::fs::metadata(&files.parquet).unwrap().len() > 100);
    let svgs: Vec<_> = files
        .plots
        .iter()
        .filter(|p| p.extension().unwrap() == "svg")
        .collect();
    // heatmap + task curves for sgd (lp-ft has no matrix), the first-task
    // curves, the summary bars
    assert_eq!(svgs.len(), 4, "{:?}", files.plots);
    // Every figure as PNG too, its text from the bundled font.
    assert_eq!(files.png_skipped, None);
    for svg in &svgs {
        let png = std::fs::read(svg.with_extension("png")).unwrap();
        assert!(png.starts_with(b"\x89PNG") && png.len() > 5_000, "{svg:?}");
    }
    let first = std::fs::read_to_string(r.join("plots/first-task-cl.svg")).unwrap();
    // R[1][0] averaged over seeds is the first task's accuracy after task 1.
    assert!(first.contains("accuracy on task 0"), "first-task plot");
    let heat =
        std::fs::read_to_string(r.join("plots/heatmap-cl-sgd_backbone_width_20.svg")).unwrap();
    // mean of R[1][0] over seeds: (80 + 70) / 2 = 75.0
    assert!(heat.contains("75.0"), "heatmap lacks the averaged entry");
}

/// Adaptation rows at several shots (coordinate `shots`) get their own
/// tables: the adapted accuracy after the last task (mean over tasks; the
/// rows after earlier tasks do not count), the gain, and the paired
/// difference from the baseline per shots.
#[test]
fn adaptation_at_several_shots_is_tabulated_and_paired_per_shots() {
    let tmp = tempfile::tempdir().unwrap();
    let r = tmp.path();
    for seed in 0..3u64 {
        let s = seed as f64;
        for (method, task0, task1) in [
            ("sgd", 50.0 + s, 60.0 + s),
            ("lp-ft", 54.0 + s, 62.0 + 2.0 * s),
        ] {
            let name = format!("cl-{method}-{seed}");
            let mut rows = Vec::new();
            for shots in [5, 20] {
                // At 20 shots lp-ft equals sgd.
                let (t0, t1) = if shots == 20 {
                    (50.0 + s, 60.0 + s)
                } else {
                    (task0, task1)
                };
                for (after, task, value) in [(0, 0, 0.0), (1, 0, t0), (1, 1, t1)] {
                    rows.push(json!({"metric": "adapt_acc", "value": value,
                        "coords": {"after_task": after, "task": task, "shots": shots}}));
                }
                rows.push(
                    json!({"metric": "adapt_gain", "value": 10.0 + s, "coords": {"shots": shots}}),
                );
            }
            let rows: Vec<_> = rows
                .into_iter()
                .map(|mut row| {
                    row["cell"] = json!(name);
                    row["experiment"] = json!("cl");
                    row["protocol"] = json!("continual");
                    row["method"] = json!(method);
                    row["seed"] = json!(seed);
                    row["axes"] = json!({"method": method, "seed": seed.to_string()});
                    row
                })
                .collect();
            let dir = write_status(r, &name, "done", method, seed);
            std::fs::write(dir.join("rows.json"), serde_json::to_string(&rows).unwrap()).unwrap();
        }
    }
    let md = report_with_sgd_baseline(r);
    assert!(
        md.contains("### Adaptation (Sun et al.): per shots per class"),
        "{md}"
    );
    // sgd at 5 shots: (50 + s + 60 + s) / 2 = 55, 56, 57.
    assert!(
        md.contains("| sgd | 5 | 56.00 ± 1.00 [53.52, 58.48] | 11.00 ± 1.00 [8.52, 13.48] | 3 |"),
        "{md}"
    );
    // lp-ft − sgd at 5 shots: 3 + 0.5 s = 3, 3.5, 4 (std 0.5, half-width
    // 4.303 · 0.5 / √3 = 1.24); at 20 shots the two are equal.
    assert!(
        md.contains("| lp-ft | 5 | +3.50 [+2.26, +4.74] * | +0.00 [+0.00, +0.00] | 3 |"),
        "{md}"
    );
    assert!(
        md.contains("| lp-ft | 20 | +0.00 [+0.00, +0.00] | +0.00 [+0.00, +0.00] | 3 |"),
        "{md}"
    );
    // Shots in numeric order: 5 before 20.
    let five = md.find("| sgd | 5 |").unwrap();
    let twenty = md.find("| sgd | 20 |").unwrap();
    assert!(five < twenty, "{md}");
    // comparison.md: a column per shots, marked against the baseline as
    // its scalar columns are. lp-ft at 5 shots: (54 + s + 62 + 2s) / 2 =
    // 58, 59.5, 61 (half-width 4.303 · 1.5 / √3 = 3.73), significantly
    // above sgd; at 20 shots equal to it (n.s.).
    let comparison = std::fs::read_to_string(r.join("comparison.md")).unwrap();
    assert!(
        comparison.contains("| method | cl: adapt acc, 5 shots | cl: adapt acc, 20 shots |"),
        "{comparison}"
    );
    assert!(
        comparison.contains(
            "| lp-ft | 59.50 ± 1.50 [55.77, 63.23] | 56.00 ± 1.00 [53.52, 58.48] (n.s.) |"
        ),
        "{comparison}"
    );
    assert!(
        comparison.contains(
            "| sgd | 56.00 ± 1.00 [53.52, 58.48] (baseline) | 56.00 ± 1.00 [53.52, 58.48] (baseline) |"
        ),
        "{comparison}"
    );
}
