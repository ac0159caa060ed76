//! End to end: the performative smoke grid through the `reusebench`
//! binary (every method, two temperatures, two seeds), its report, its
//! determinism, and the configurations validation must refuse.

mod common;

use common::{Rejection, assert_rejected, cell_rows, reproducible, run, smoke_grid_text, values};
use reusebench_results::names;

#[test]
fn performative_smoke_grid_runs_reports_and_reproduces() {
    let tmp = tempfile::tempdir().unwrap();
    let grid = tmp.path().join("grid.yaml");
    std::fs::write(&grid, smoke_grid_text("performative", tmp.path())).unwrap();
    let g = grid.to_str().unwrap();
    let results = tmp.path().join("results");

    let (code, out) = run(&["run", g]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("29 cell(s) run, 0 skipped"), "{out}");

    let md = std::fs::read_to_string(results.join("summary.md")).unwrap();
    assert!(md.contains("## performative (performative)"), "{md}");
    for method in [
        "no-adapt",
        "oracle-prior",
        "em-prior",
        "bbse",
        "pap",
        "retrain",
    ] {
        assert!(md.contains(&format!("| {method} |")), "{method}: {md}");
    }
    assert!(md.contains(names::MEAN_ROUND_ACC) && md.contains(names::MEAN_ROUND_KL_PRIOR));
    assert!(md.contains("### Between no-adapt and oracle-prior"), "{md}");
    assert!(
        md.contains("temperature=0.1") && md.contains("temperature=0.5"),
        "{md}"
    );
    // 20 rounds are drawn as figures, not printed as 20-row tables.
    assert!(!md.contains("### round_acc"), "{md}");
    for f in [
        "rounds-acc-performative-tau-0_1.svg",
        "rounds-loss-performative-tau-0_5.svg",
    ] {
        assert!(results.join("plots").join(f).is_file(), "{f} missing");
    }

    let first = cell_rows(&results, "performative");
    assert_eq!(first.len(), 28, "7 methods x 2 temperatures x 2 seeds");
    for (method, rows) in &first {
        assert_eq!(values(rows, names::ROUND_ACC).len(), 20, "{method}");
        let kl = values(rows, names::ROUND_KL_PRIOR);
        match method.as_str() {
            "no-adapt" | "retrain" | "retrain+backbone" => {
                assert!(kl.is_empty(), "{method} predicts no prior")
            }
            "oracle-prior" => assert!(kl.iter().all(|&v| v.abs() < 1e-12), "{kl:?}"),
            _ => assert_eq!(kl.len(), 20, "{method}"),
        }
        // The cumulative accuracy of the last round is the mean over rounds.
        let mean = values(rows, names::MEAN_ROUND_ACC)[0];
        let cumulative = values(rows, names::CUMULATIVE_ACC);
        assert!((cumulative[19] - mean).abs() < 1e-9);
    }

    // Retraining the backbone is another method: its rounds differ from
    // retraining the head alone on the same seeds.
    let acc_of = |m: &str| -> Vec<Vec<f64>> {
        first
            .iter()
            .filter(|(method, _)| method == m)
            .map(|(_, rows)| values(rows, names::ROUND_ACC))
            .collect()
    };
    assert_ne!(acc_of("retrain"), acc_of("retrain+backbone"));

    // Every cell again from scratch: the same rows to the last bit.
    let (code, out) = run(&["run", g, "--force", "--no-report"]);
    assert_eq!(code, 0, "{out}");
    assert_eq!(
        reproducible(&cell_rows(&results, "performative")),
        reproducible(&first)
    );
}

#[test]
fn validate_rejects_impossible_performative_settings_with_file_line_and_key() {
    let tmp = tempfile::tempdir().unwrap();
    let text = smoke_grid_text("performative", tmp.path());
    assert_rejected(
        tmp.path(),
        &text,
        &[
            Rejection {
                from: "temperature: [0.1, 0.5]",
                to: "temperature: [0.1, -0.5]",
                line_of: "temperature: [0.1, -0.5]",
                key: "temperature",
                message: "must be > 0",
            },
            Rejection {
                from: "min_per_class: 2",
                to: "min_per_class: 2\n      replace: never",
                line_of: "n_train: 40",
                key: "n_train",
                message: "the smallest class's training part of the pool holds 12",
            },
            Rejection {
                from: "min_per_class: 2",
                to: "min_per_class: 20",
                line_of: "min_per_class: 20",
                key: "min_per_class",
                message: "more than n_test = 60",
            },
            Rejection {
                from: "- { name: pap }",
                to: "- { name: pap, lr: -1.0 }",
                line_of: "name: pap, lr",
                key: "method.lr",
                message: "must be > 0",
            },
        ],
    );
}
