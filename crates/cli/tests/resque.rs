//! End to end: the resque smoke grid through the `reusebench` binary
//! (corruptions at several levels and a new task, two seeds), its report,
//! its determinism, and the configurations validation must refuse.

mod common;

use common::{Rejection, assert_rejected, cell_rows, reproducible, run, scalars, smoke_grid_text};
use reusebench_results::names;

fn get(values: &[(String, f64)], metric: &str) -> Option<f64> {
    values.iter().find(|(m, _)| m == metric).map(|(_, v)| *v)
}

#[test]
fn resque_smoke_grid_predicts_retrains_and_reports_correlations() {
    let tmp = tempfile::tempdir().unwrap();
    let grid = tmp.path().join("grid.yaml");
    std::fs::write(&grid, smoke_grid_text("resque", tmp.path())).unwrap();
    let g = grid.to_str().unwrap();
    let results = tmp.path().join("results");

    let (code, out) = run(&["run", g]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("15 cell(s) run, 0 skipped"), "{out}");

    let first_rows = cell_rows(&results, "resque");
    let first: Vec<(String, Vec<(String, f64)>)> = first_rows
        .iter()
        .map(|(m, rows)| (m.clone(), scalars(rows)))
        .collect();
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
    assert_eq!(
        reproducible(&cell_rows(&results, "resque")),
        reproducible(&first_rows)
    );
}

#[test]
fn validate_rejects_impossible_resque_settings_with_file_line_and_key() {
    let tmp = tempfile::tempdir().unwrap();
    let text = smoke_grid_text("resque", tmp.path());
    assert_rejected(
        tmp.path(),
        &text,
        &[
            Rejection {
                from: "- { family: salt-pepper, level: 5 }",
                to: "- { family: salt-pepper, level: 6 }",
                line_of: "family: salt-pepper, level: 6",
                key: "shift.level",
                message: "levels 1 to 5",
            },
            Rejection {
                from: "- { family: gaussian-blur, level: 1 }",
                to: "- { family: fog, level: 1 }",
                line_of: "family: fog",
                key: "shift.family",
                message: "unknown variant `fog`",
            },
            Rejection {
                from: "layer: layer3",
                to: "layer: layer9",
                line_of: "layer: layer9",
                key: "layer",
                message: "no layer `layer9`",
            },
            Rejection {
                from: "target_acc: 90",
                to: "target_acc: 120",
                line_of: "target_acc: 120",
                key: "retrain.target_acc",
                message: "must be in (0, 100]",
            },
            Rejection {
                from: "retrain: { target_acc: 90,",
                to: "retrain: { target_acc: 90, target_of_clean: 0.9,",
                line_of: "target_of_clean: 0.9",
                key: "retrain",
                message: "give one of target_acc (%) and target_of_clean",
            },
        ],
    );
}
