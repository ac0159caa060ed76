//! End to end: the performative smoke grid through the `reusebench`
//! binary (every method, two temperatures, two seeds), its report, its
//! determinism, and the configurations validation must refuse.

use std::path::{Path, PathBuf};
use std::process::Command;

use reusebench_results::names;

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn run(args: &[&str]) -> (i32, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_reusebench"))
        .args(args)
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.code().unwrap_or(-1), text)
}

/// The smoke grid's text with its results redirected into `dir`.
fn grid_text(dir: &Path) -> String {
    std::fs::read_to_string(repo().join("experiments/smoke/performative.yaml"))
        .unwrap()
        .replace(
            "results: results/smoke-performative",
            &format!("results: {}", dir.join("results").display()),
        )
}

/// Rows of every performative cell: (method, rows), timing rows left out.
fn cells(results: &Path) -> Vec<(String, Vec<serde_json::Value>)> {
    let mut dirs: Vec<_> = std::fs::read_dir(results.join("cells"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| {
            p.file_name()
                .unwrap()
                .to_string_lossy()
                .starts_with("performative-")
        })
        .collect();
    dirs.sort();
    dirs.iter()
        .map(|d| {
            let rows: Vec<serde_json::Value> =
                serde_json::from_str(&std::fs::read_to_string(d.join("rows.json")).unwrap())
                    .unwrap();
            let method = rows[0]["method"].as_str().unwrap().to_string();
            let rows = rows
                .into_iter()
                .filter(|r| !names::TIMING.contains(&r["metric"].as_str().unwrap()))
                .collect();
            (method, rows)
        })
        .collect()
}

fn values(rows: &[serde_json::Value], metric: &str) -> Vec<f64> {
    rows.iter()
        .filter(|r| r["metric"] == metric)
        .map(|r| r["value"].as_f64().unwrap())
        .collect()
}

#[test]
fn performative_smoke_grid_runs_reports_and_reproduces() {
    let tmp = tempfile::tempdir().unwrap();
    let grid = tmp.path().join("grid.yaml");
    std::fs::write(&grid, grid_text(tmp.path())).unwrap();
    let g = grid.to_str().unwrap();
    let results = tmp.path().join("results");

    let (code, out) = run(&["run", g]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("25 cell(s) run, 0 skipped"), "{out}");

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

    let first = cells(&results);
    assert_eq!(first.len(), 24, "6 methods x 2 temperatures x 2 seeds");
    for (method, rows) in &first {
        assert_eq!(values(rows, names::ROUND_ACC).len(), 20, "{method}");
        let kl = values(rows, names::ROUND_KL_PRIOR);
        match method.as_str() {
            "no-adapt" | "retrain" => assert!(kl.is_empty(), "{method} predicts no prior"),
            "oracle-prior" => assert!(kl.iter().all(|&v| v.abs() < 1e-12), "{kl:?}"),
            _ => assert_eq!(kl.len(), 20, "{method}"),
        }
        // The cumulative accuracy of the last round is the mean over rounds.
        let mean = values(rows, names::MEAN_ROUND_ACC)[0];
        let cumulative = values(rows, names::CUMULATIVE_ACC);
        assert!((cumulative[19] - mean).abs() < 1e-9);
    }

    // Every cell again from scratch: the same rows to the last bit.
    let (code, out) = run(&["run", g, "--force", "--no-report"]);
    assert_eq!(code, 0, "{out}");
    assert_eq!(cells(&results), first);
}

#[test]
fn validate_rejects_impossible_performative_settings_with_file_line_and_key() {
    let tmp = tempfile::tempdir().unwrap();
    let text = grid_text(tmp.path());
    let cases = [
        (
            "temperature: [0.1, 0.5]",
            "temperature: [0.1, -0.5]",
            "temperature: [0.1, -0.5]",
            "key `temperature`",
            "must be > 0",
        ),
        (
            "min_per_class: 2",
            "min_per_class: 2\n      replace: never",
            "n_train: 40",
            "key `n_train`",
            "the smallest class's training part of the pool holds 12",
        ),
        (
            "min_per_class: 2",
            "min_per_class: 20",
            "min_per_class: 20",
            "key `min_per_class`",
            "more than n_test = 60",
        ),
        (
            "- { name: pap }",
            "- { name: pap, lr: -1.0 }",
            "name: pap, lr",
            "key `method.lr`",
            "must be > 0",
        ),
    ];
    for (k, (from, to, line_text, key, message)) in cases.iter().enumerate() {
        let changed = text.replace(from, to);
        assert_ne!(changed, text, "case {k}");
        let path = tmp.path().join(format!("bad-{k}.yaml"));
        std::fs::write(&path, &changed).unwrap();
        let line = changed.lines().position(|l| l.contains(line_text)).unwrap() + 1;
        let (code, out) = run(&["validate", path.to_str().unwrap()]);
        assert_eq!(code, 2, "{out}");
        assert!(
            out.contains(&format!("bad-{k}.yaml:{line}"))
                && out.contains(key)
                && out.contains(message),
            "case {k}: expected line {line}, {key}, {message}:\n{out}"
        );
    }
    assert!(!tmp.path().join("results").exists(), "nothing ran");
}
