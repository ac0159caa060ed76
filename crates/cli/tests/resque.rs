//! End to end: the resque smoke grid through the `reusebench` binary
//! (corruptions at several levels and a new task, two seeds), its report,
//! its determinism, and the configurations validation must refuse.

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
    std::fs::read_to_string(repo().join("experiments/smoke/resque.yaml"))
        .unwrap()
        .replace(
            "results: results/smoke-resque",
            &format!("results: {}", dir.join("results").display()),
        )
}

/// Every resque cell's scalars by metric, with its method (the shift family).
fn cells(results: &Path) -> Vec<(String, Vec<(String, f64)>)> {
    let mut dirs: Vec<_> = std::fs::read_dir(results.join("cells"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| {
            p.file_name()
                .unwrap()
                .to_string_lossy()
                .starts_with("resque-")
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
                .filter(|r| {
                    r.get("coords").is_none() || r["coords"].as_object().unwrap().is_empty()
                })
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

fn get(values: &[(String, f64)], metric: &str) -> Option<f64> {
    values.iter().find(|(m, _)| m == metric).map(|(_, v)| *v)
}

#[test]
fn resque_smoke_grid_predicts_retrains_and_reports_correlations() {
    let tmp = tempfile::tempdir().unwrap();
    let grid = tmp.path().join("grid.yaml");
    std::fs::write(&grid, grid_text(tmp.path())).unwrap();
    let g = grid.to_str().unwrap();
    let results = tmp.path().join("results");

    let (code, out) = run(&["run", g]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("15 cell(s) run, 0 skipped"), "{out}");

    let first = cells(&results);
    assert_eq!(first.len(), 14, "7 shifts x 2 seeds");
    for (family, v) in &first {
        let (dist, task) = (get(v, names::RESQUE_DIST), get(v, names::RESQUE_TASK));
        if family == "task" {
            assert!(dist.is_none() && task.is_some_and(|t| (0.0..=2.0).contains(&t)));
        } else {
            assert!(
                task.is_none() && dist.is_some_and(|d| (0.0..=1.0).contains(&d)),
                "{v:?}"
            );
        }
        let epochs = get(v, names::RETRAIN_EPOCHS).unwrap();
        let reached = get(v, names::TARGET_REACHED).unwrap();
        assert!(epochs <= 2.0, "the cap holds");
        // Not reached: the cap ran out; 0 epochs only when already there.
        if reached == 0.0 {
            assert_eq!(epochs, 2.0);
        }
        if epochs == 0.0 {
            assert!(get(v, names::ACC_BEFORE_RETRAIN).unwrap() >= 90.0);
        }
        for m in [
            names::MEAN_GRAD_NORM,
            names::PARAM_CHANGE,
            names::ENERGY_JOULES,
            names::CARBON_GRAMS,
        ] {
            let x = get(v, m).unwrap_or_else(|| panic!("{family}: no {m}"));
            assert!(x.is_finite() && x >= 0.0, "{m} = {x}");
        }
        if epochs > 0.0 {
            assert!(
                get(v, names::PARAM_CHANGE).unwrap() > 0.0,
                "retraining moves weights"
            );
            assert!(get(v, names::MEAN_GRAD_NORM).unwrap() > 0.0);
        }
        // Carbon is energy times the grid's 475 g/kWh.
        let (j, c) = (
            get(v, names::ENERGY_JOULES).unwrap(),
            get(v, names::CARBON_GRAMS).unwrap(),
        );
        assert!((c - j / 3.6e6 * 475.0).abs() < 1e-12);
    }
    // Noise at level 5 shifts the activations more than at level 1 (seed 0).
    let noise: Vec<f64> = first
        .iter()
        .filter(|(f, _)| f == "gaussian-noise")
        .map(|(_, v)| get(v, names::RESQUE_DIST).unwrap())
        .collect();
    assert_eq!(noise.len(), 4);

    let md = std::fs::read_to_string(results.join("summary.md")).unwrap();
    assert!(
        md.contains("### RESQUE against the cost of retraining"),
        "{md}"
    );
    assert!(md.contains("| all corruptions | energy (J) | 12 |"), "{md}");
    assert!(md.contains("| gaussian-noise | energy (J) | 4 |"), "{md}");
    for f in [
        "resque-dist-vs-epochs-resque.svg",
        "resque-dist-vs-energy-resque.svg",
        "resque-task-vs-epochs-resque.svg",
    ] {
        assert!(results.join("plots").join(f).is_file(), "{f}");
    }

    // Again from scratch: every measured result the same, timing aside.
    let (code, out) = run(&["run", g, "--force", "--no-report"]);
    assert_eq!(code, 0, "{out}");
    let strip = |c: Vec<(String, Vec<(String, f64)>)>| -> Vec<(String, Vec<(String, u64)>)> {
        c.into_iter()
            .map(|(f, v)| {
                (
                    f,
                    v.into_iter()
                        .filter(|(m, _)| !names::TIMING.contains(&m.as_str()))
                        .map(|(m, x)| (m, x.to_bits()))
                        .collect(),
                )
            })
            .collect()
    };
    assert_eq!(strip(cells(&results)), strip(first));
}

#[test]
fn validate_rejects_impossible_resque_settings_with_file_line_and_key() {
    let tmp = tempfile::tempdir().unwrap();
    let text = grid_text(tmp.path());
    let cases = [
        (
            "- { family: salt-pepper, level: 5 }",
            "- { family: salt-pepper, level: 6 }",
            "family: salt-pepper, level: 6",
            "key `shift.level`",
            "levels 1 to 5",
        ),
        (
            "- { family: gaussian-blur, level: 1 }",
            "- { family: fog, level: 1 }",
            "family: fog",
            "key `shift.family`",
            "unknown variant `fog`",
        ),
        (
            "layer: layer3",
            "layer: layer9",
            "layer: layer9",
            "key `layer`",
            "no layer `layer9`",
        ),
        (
            "target_acc: 90",
            "target_acc: 120",
            "target_acc: 120",
            "key `retrain.target_acc`",
            "must be in (0, 100]",
        ),
        (
            "retrain: { target_acc: 90,",
            "retrain: { target_acc: 90, target_of_clean: 0.9,",
            "target_of_clean: 0.9",
            "key `retrain`",
            "give one of target_acc (%) and target_of_clean",
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
