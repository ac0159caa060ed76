//! End to end: the debias smoke grid through the `reusebench` binary
//! (every method, two k, two seeds), its report, its determinism, and the
//! configurations validation must refuse.

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

fn grid_text(dir: &Path) -> String {
    std::fs::read_to_string(repo().join("experiments/smoke/debias.yaml"))
        .unwrap()
        .replace(
            "results: results/smoke-debias",
            &format!("results: {}", dir.join("results").display()),
        )
}

/// Every debias cell's rows: (method, [(metric, value bits)]).
fn cells(results: &Path) -> Vec<(String, Vec<(String, f64)>)> {
    let mut dirs: Vec<_> = std::fs::read_dir(results.join("cells"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| {
            p.file_name()
                .unwrap()
                .to_string_lossy()
                .starts_with("debias-")
        })
        .collect();
    dirs.sort();
    dirs.iter()
        .map(|d| {
            let rows: Vec<serde_json::Value> =
                serde_json::from_str(&std::fs::read_to_string(d.join("rows.json")).unwrap())
                    .unwrap();
            let method = rows[0]["method"].as_str().unwrap().to_string();
            let values = rows
                .iter()
                .map(|r| {
                    (
                        r["metric"].as_str().unwrap().to_string(),
                        r["value"].as_f64().unwrap(),
                    )
                })
                .collect();
            (method, values)
        })
        .collect()
}

fn get(values: &[(String, f64)], metric: &str) -> f64 {
    values
        .iter()
        .find(|(m, _)| m == metric)
        .unwrap_or_else(|| panic!("{metric}"))
        .1
}

#[test]
fn debias_smoke_grid_tunes_every_method_and_reports() {
    let tmp = tempfile::tempdir().unwrap();
    let grid = tmp.path().join("grid.yaml");
    std::fs::write(&grid, grid_text(tmp.path())).unwrap();
    let g = grid.to_str().unwrap();
    let results = tmp.path().join("results");
    let (code, out) = run(&["run", g]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("25 cell(s) run, 0 skipped"), "{out}");

    let first = cells(&results);
    assert_eq!(first.len(), 24, "6 methods x 2 k x 2 seeds");
    for (method, v) in &first {
        let steps = get(v, names::TUNING_STEPS);
        assert!((1.0..=8.0).contains(&steps), "{method}: {steps}");
        // Stopped early means at least min_steps (2) steps were taken.
        if get(v, names::STOPPED_EARLY) == 1.0 {
            assert!(steps >= 2.0);
        } else {
            assert_eq!(steps, 8.0, "{method}: the cap");
        }
        assert!(
            get(v, names::DELTA_NORM) > 0.0,
            "{method} changed the model"
        );
        for m in [
            names::ACC_UNBIASED,
            names::ACC_ALIGNED,
            names::ACC_CONFLICTING,
            names::ACC_ORIGINAL,
        ] {
            let (after, before) = (get(v, m), get(v, &format!("{m}{}", names::BEFORE_SUFFIX)));
            assert!((0.0..=100.0).contains(&after) && (0.0..=100.0).contains(&before));
        }
    }
    // The pretrained classifier learned the shortcut: aligned above conflicting.
    let (_, v) = &first[0];
    assert!(
        get(
            v,
            &format!("{}{}", names::ACC_ALIGNED, names::BEFORE_SUFFIX)
        ) > get(
            v,
            &format!("{}{}", names::ACC_CONFLICTING, names::BEFORE_SUFFIX)
        ) + 20.0
    );

    let md = std::fs::read_to_string(results.join("summary.md")).unwrap();
    for needle in [
        "### The biased classifier before tuning",
        "| method | k=1 conflicting | k=1 unbiased | k=4 conflicting | k=4 unbiased |",
        "### Accuracy kept on the original task",
        "| change-penalty |",
        "| dropout-ft |",
    ] {
        assert!(md.contains(needle), "{needle}\n{md}");
    }
    for f in [
        "debias-conflicting-vs-k-debias.svg",
        "debias-unbiased-vs-k-debias.svg",
    ] {
        assert!(results.join("plots").join(f).is_file(), "{f}");
    }

    let (code, out) = run(&["run", g, "--force", "--no-report"]);
    assert_eq!(code, 0, "{out}");
    let bits = |c: Vec<(String, Vec<(String, f64)>)>| -> Vec<(String, Vec<(String, u64)>)> {
        c.into_iter()
            .map(|(m, v)| {
                (
                    m,
                    v.into_iter()
                        .filter(|(n, _)| !names::TIMING.contains(&n.as_str()))
                        .map(|(n, x)| (n, x.to_bits()))
                        .collect(),
                )
            })
            .collect()
    };
    assert_eq!(
        bits(cells(&results)),
        bits(first),
        "the same rows, bit for bit"
    );
}

#[test]
fn validate_rejects_impossible_debias_settings_with_file_line_and_key() {
    let tmp = tempfile::tempdir().unwrap();
    let text = grid_text(tmp.path());
    let cases = [
        (
            "k: [1, 4]",
            "k: [1, 400]",
            "k: [1, 400]",
            "key `k`",
            "training split holds 128 images",
        ),
        (
            "shortcut: { kind: patch, strength: 0.95, size: 6 }\n      k: 1",
            "shortcut: { kind: patch, strength: 1.5, size: 6 }\n      k: 1",
            "strength: 1.5",
            "key `shortcut.strength`",
            "strength must be in [0, 1]",
        ),
        (
            "lambda: 0.01, norm: l2",
            "lambda: -1.0, norm: l2",
            "lambda: -1.0",
            "key `method.lambda`",
            "must be >= 0",
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
