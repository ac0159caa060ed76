//! End to end: the canonicalize smoke grid through the `reusebench` binary
//! (every method, two seeds), its report, its determinism, and the
//! configurations validation must refuse.

use crate::common::{Rejection, SmokeRun, assert_smoke_rejects, cell_rows, get, scalars};
use reusebench_results::names;

#[test]
fn canonicalize_smoke_grid_trains_every_method_and_reports() {
    let smoke = SmokeRun::new("canonicalize", 9);
    let results = &smoke.results;

    let first_rows = cell_rows(results, "canonicalize");
    assert_eq!(first_rows.len(), 8, "4 methods x 2 seeds");
    for (method, rows) in &first_rows {
        let v = scalars(rows);
        for m in [
            names::ACC_UPRIGHT,
            names::ACC_C8_AVG,
            names::ACC_GROUP_AVG,
            names::INVARIANCE_ERROR,
        ] {
            let x = get(&v, m).unwrap_or_else(|| panic!("{method}: {m}"));
            assert!((0.0..=100.0).contains(&x), "{method}: {m} = {x}");
        }
        // Group C8: the group average is the C8 average.
        assert_eq!(get(&v, names::ACC_GROUP_AVG), get(&v, names::ACC_C8_AVG));
        let canonicalizes = method.starts_with("canon");
        assert_eq!(
            get(&v, names::UPRIGHT_FRACTION).is_some(),
            canonicalizes,
            "{method}: mapped-upright share only with a canonicalizer"
        );
        let angles: Vec<f64> = rows
            .iter()
            .filter(|r| r["metric"] == names::ACC_ROTATED)
            .map(|r| r["coords"][names::ANGLE].as_f64().unwrap())
            .collect();
        assert_eq!(angles, (0..8).map(|a| a as f64 * 45.0).collect::<Vec<_>>());
        // The upright accuracy is the 0° entry.
        let at_zero = rows
            .iter()
            .find(|r| r["metric"] == names::ACC_ROTATED)
            .unwrap()["value"]
            .as_f64();
        assert_eq!(at_zero, get(&v, names::ACC_UPRIGHT));
    }

    let md = smoke.assert_report(
        &[
            "### Upright and C8-averaged accuracy",
            "| method | upright | C8-averaged | invariance error | mapped upright |",
            "| vanilla |",
            "| canon-prior |",
        ],
        &["canonicalize-acc-per-angle-canonicalize.svg"],
    );
    // The paper's order: vanilla first, canon-prior last.
    let table = &md[md.find("### Upright and C8").unwrap()..];
    assert!(table.find("| vanilla |") < table.find("| canon-prior |"));

    smoke.assert_rerun_identical("canonicalize", &first_rows);
}

#[test]
fn validate_rejects_impossible_canonicalize_settings_with_file_line_and_key() {
    assert_smoke_rejects(
        "canonicalize",
        &[
            Rejection {
                from: "group_order: 8",
                to: "group_order: 6",
                line_of: "group_order: 6",
                key: "group_order",
                message: "must be 4 or 8",
            },
            Rejection {
                from: "canonicalizer: { layers: 2, channels: 4, kernel: 5 }",
                to: "canonicalizer: { layers: 2, channels: 4, kernel: 5, input_size: 48 }",
                line_of: "input_size: 48",
                key: "canonicalizer.input_size",
                message: "48 pixels, larger than the 32-pixel images of synthetic",
            },
            Rejection {
                from: "- { name: canon-prior, prior_weight: 100, prior_epochs: 1 }",
                to: "- { name: canon-prior, prior_weight: -1, prior_epochs: 1 }",
                line_of: "prior_weight: -1",
                key: "method.prior_weight",
                message: "must be >= 0",
            },
            Rejection {
                from: "canonicalizer: { layers: 2, channels: 4, kernel: 5 }",
                to: "canonicalizer: { layers: 2, channels: 4, kernel: 4 }",
                line_of: "kernel: 4",
                key: "canonicalizer.kernel",
                message: "must be odd",
            },
        ],
    );
}
