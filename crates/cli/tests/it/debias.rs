//! End to end: the debias smoke grid through the `reusebench` binary
//! (every method, two k, two seeds), its report, its determinism, and the
//! configurations validation must refuse.

use crate::common::{Rejection, SmokeRun, assert_smoke_rejects, cell_rows, scalars_by_cell};
use reusebench_results::names;

fn get(values: &[(String, f64)], metric: &str) -> f64 {
    values
        .iter()
        .find(|(m, _)| m == metric)
        .unwrap_or_else(|| panic!("{metric}"))
        .1
}

#[test]
fn debias_smoke_grid_tunes_every_method_and_reports() {
    let smoke = SmokeRun::new("debias", 32);
    let results = &smoke.results;

    let first_rows = cell_rows(results, "debias");
    let first = scalars_by_cell(&first_rows);
    assert_eq!(first.len(), 28, "7 methods x 2 k x 2 seeds");
    for (method, v) in &first {
        let steps = get(v, names::TUNING_STEPS);
        assert!((1.0..=8.0).contains(&steps), "{method}: {steps}");
        if method == "finetune-plain" {
            // Plain fine-tuning ignores early stopping: every step.
            assert_eq!((steps, get(v, names::STOPPED_EARLY)), (8.0, 0.0));
        }
        // The worst (class, shortcut agrees / disagrees) group is at most
        // either side's accuracy.
        for suffix in ["", names::BEFORE_SUFFIX] {
            let worst = get(v, &format!("{}{suffix}", names::WORST_GROUP_ACC));
            let aligned = get(v, &format!("{}{suffix}", names::ACC_ALIGNED));
            let conflicting = get(v, &format!("{}{suffix}", names::ACC_CONFLICTING));
            assert!(
                worst <= aligned.min(conflicting) + 1e-9,
                "{method}: {worst}"
            );
        }
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

    // The second shortcut (a tint of the whole image) is learned too.
    let tint = scalars_by_cell(&cell_rows(results, "debias-tint"));
    assert_eq!(tint.len(), 2);
    let (_, v) = &tint[0];
    let before = |m: &str| get(v, &format!("{m}{}", names::BEFORE_SUFFIX));
    assert!(before(names::ACC_ALIGNED) > before(names::ACC_CONFLICTING) + 20.0);

    smoke.assert_report(
        &[
            "### Trade-off: bias removed against accuracy kept",
            "| method | clean (kept) | conflicting (removed) | worst group | front |",
            "### The biased classifier before tuning",
            "| method | k=1 conflicting | k=1 unbiased | k=4 conflicting | k=4 unbiased |",
            "### Accuracy kept on the original task",
            "| change-penalty |",
            "| dropout-ft |",
        ],
        &[
            "debias-conflicting-vs-k-debias.svg",
            "debias-unbiased-vs-k-debias.svg",
            "debias-pareto-k1-debias.svg",
            "debias-pareto-k4-debias.svg",
        ],
    );

    smoke.assert_rerun_identical("debias", &first_rows);
}

#[test]
fn validate_rejects_impossible_debias_settings_with_file_line_and_key() {
    assert_smoke_rejects(
        "debias",
        &[
            Rejection {
                from: "k: [1, 4]",
                to: "k: [1, 400]",
                line_of: "k: [1, 400]",
                key: "k",
                message: "training split holds 128 images",
            },
            Rejection {
                from: "shortcut: { kind: patch, strength: 0.95, size: 6 }\n      k: 1",
                to: "shortcut: { kind: patch, strength: 1.5, size: 6 }\n      k: 1",
                line_of: "strength: 1.5",
                key: "shortcut.strength",
                message: "strength must be in [0, 1]",
            },
            Rejection {
                from: "lambda: 0.01, norm: l2",
                to: "lambda: -1.0, norm: l2",
                line_of: "lambda: -1.0",
                key: "method.lambda",
                message: "must be >= 0",
            },
        ],
    );
}
