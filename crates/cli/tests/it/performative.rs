//! End to end: the performative smoke grid through the `reusebench`
//! binary (every method, two temperatures, two seeds), its report, its
//! determinism, and the configurations validation must refuse.

use crate::common::{Rejection, SmokeRun, assert_smoke_rejects, cell_rows, values};
use reusebench_results::names;

#[test]
fn performative_smoke_grid_runs_reports_and_reproduces() {
    let smoke = SmokeRun::new("performative", 57);
    let results = &smoke.results;

    let md = smoke.assert_report(
        &[
            "## performative (performative)",
            "| no-adapt |",
            "| oracle-prior |",
            "| em-prior |",
            "| bbse |",
            "| pap |",
            "| retrain-head |",
            "| finetune |",
            names::MEAN_ROUND_ACC,
            names::MEAN_ROUND_KL_PRIOR,
            "### Between no-adapt and oracle-prior",
            "temperature=0.1",
            "temperature=0.5",
        ],
        &[
            "rounds-acc-performative-tau-0_1.svg",
            "rounds-loss-performative-tau-0_5.svg",
        ],
    );
    // 20 rounds are drawn as figures, not printed as 20-row tables.
    assert!(!md.contains("### round_acc"), "{md}");

    let first = cell_rows(results, "performative");
    assert_eq!(
        first.len(),
        56,
        "7 methods x 2 temperatures x 2 trajectories x 2 seeds"
    );
    for (method, rows) in &first {
        assert_eq!(values(rows, names::ROUND_ACC).len(), 20, "{method}");
        let kl = values(rows, names::ROUND_KL_PRIOR);
        match method.as_str() {
            "no-adapt" | "retrain-head" | "finetune" => {
                assert!(kl.is_empty(), "{method} predicts no prior")
            }
            // The oracle corrects with the test sample's frequencies: the
            // proportions it was drawn from differ by the minimum and by
            // classes that ran out.
            "oracle-prior" => assert!(kl.len() == 20 && kl.iter().all(|&v| v >= 0.0), "{kl:?}"),
            _ => assert_eq!(kl.len(), 20, "{method}"),
        }
        // The cumulative accuracy of the last round is the mean over rounds.
        let mean = values(rows, names::MEAN_ROUND_ACC)[0];
        let cumulative = values(rows, names::CUMULATIVE_ACC);
        assert!((cumulative[19] - mean).abs() < 1e-9);
    }

    // Fine-tuning the whole classifier is another method: its rounds
    // differ from retraining the head alone on the same seeds.
    let acc_of = |m: &str| -> Vec<Vec<f64>> {
        first
            .iter()
            .filter(|(method, _)| method == m)
            .map(|(_, rows)| values(rows, names::ROUND_ACC))
            .collect()
    };
    assert_ne!(acc_of("retrain-head"), acc_of("finetune"));

    // Paired: every method sees PaP's shifts, round by round (the same
    // largest proportion); own: each its own.
    let shifts = |trajectory: &str, tau: f64, seed: u64| -> Vec<Vec<f64>> {
        first
            .iter()
            .filter(|(_, rows)| {
                rows[0]["axes"]["trajectory"] == trajectory
                    && rows[0]["axes"]["temperature"].as_f64() == Some(tau)
                    && rows[0]["seed"] == seed
            })
            .map(|(_, rows)| values(rows, names::ROUND_MAX_PROPORTION))
            .collect()
    };
    for seed in [0, 1] {
        let paired = shifts("paired", 0.1, seed);
        assert_eq!(paired.len(), 7);
        assert!(
            paired.iter().all(|p| p == &paired[0]),
            "one trajectory for all"
        );
        let own = shifts("own", 0.1, seed);
        assert!(own.iter().any(|p| p != &own[0]), "each method its own");
        for (_, rows) in &first {
            let flag = values(rows, names::TRAJECTORY_PAIRED)[0];
            assert_eq!(flag == 1.0, rows[0]["axes"]["trajectory"] == "paired");
        }
    }

    // Every cell again from scratch: the same rows to the last bit.
    smoke.assert_rerun_identical("performative", &first);
}

#[test]
fn validate_rejects_impossible_performative_settings_with_file_line_and_key() {
    assert_smoke_rejects(
        "performative",
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
                message: "the smallest class's training part of the pool holds 20",
            },
            Rejection {
                from: "n_test: 60",
                to: "n_test: 100",
                line_of: "n_test: 100",
                key: "n_test",
                message: "drawn without replacement, but the pool's test part holds 80",
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
