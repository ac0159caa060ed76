//! `tune:` end to end: the smoke search selects per method and the report
//! says what it chose; selection never reads the test split (a poisoned
//! test file leaves every trial and the selection as they were).

use std::path::Path;

use crate::common::{SmokeRun, make_fixture, run};

/// (role, group, values, validation score, trial index) of every tuned
/// cell, and the objective each cell's own rows give, by folder name.
fn tuning_of(results: &Path) -> Vec<(String, serde_json::Value, Option<f64>)> {
    let mut dirs: Vec<_> = std::fs::read_dir(results.join("cells"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|d| d.join("tuning.json").is_file())
        .collect();
    dirs.sort();
    dirs.iter()
        .map(|d| {
            let record: serde_json::Value =
                serde_json::from_str(&std::fs::read_to_string(d.join("tuning.json")).unwrap())
                    .unwrap();
            let rows: Vec<serde_json::Value> =
                serde_json::from_str(&std::fs::read_to_string(d.join("rows.json")).unwrap())
                    .unwrap();
            let objective = record["objective"].as_str().unwrap();
            let value = rows
                .iter()
                .find(|r| r["metric"] == objective && r.get("coords").is_none())
                .and_then(|r| r["value"].as_f64());
            let split = &rows[0]["split"];
            assert!(
                rows.iter().all(|r| &r["split"] == split),
                "one split per cell"
            );
            let want = if record["role"] == "trial" {
                "validation"
            } else {
                "test"
            };
            assert_eq!(split, want, "{}: {record}", d.display());
            (
                d.file_name().unwrap().to_string_lossy().to_string(),
                record,
                value,
            )
        })
        .collect()
}

#[test]
fn smoke_tune_grid_selects_per_method_and_reports_it() {
    let smoke = SmokeRun::any("tune");
    let results = smoke.results.clone();
    let tuned = tuning_of(&results);
    let finals: Vec<_> = tuned.iter().filter(|t| t.1["role"] == "final").collect();
    assert_eq!(finals.len(), 4, "two methods × two final seeds");
    for (_, record, _) in &finals {
        let group = record["group"].as_str().unwrap();
        // The selection is the best trial of its group on validation.
        let trials: Vec<_> = tuned
            .iter()
            .filter(|t| t.1["role"] == "trial" && t.1["group"] == group)
            .collect();
        assert_eq!(trials.len(), 4, "{group}: trials: 4");
        let best = trials
            .iter()
            .filter_map(|t| t.2)
            .fold(f64::NEG_INFINITY, f64::max);
        assert_eq!(record["validation_score"].as_f64(), Some(best), "{group}");
        let chosen = trials
            .iter()
            .find(|t| t.1["trial"] == record["trial"])
            .unwrap();
        assert_eq!(chosen.1["values"], record["values"], "{group}");
        assert_eq!(
            chosen.2,
            Some(best),
            "{group}: the chosen trial scored best"
        );
        let keys: Vec<&String> = record["values"].as_object().unwrap().keys().collect();
        match group {
            "finetune" => assert_eq!(keys, ["method.optimizer.lr"]),
            "l2-sp" => assert_eq!(keys, ["method.optimizer.lr", "method.lambda"]),
            other => panic!("unexpected group {other}"),
        }
    }
    let summary = std::fs::read_to_string(results.join("summary.md")).unwrap();
    assert!(
        summary.contains("### Hyperparameters selected on validation"),
        "{summary}"
    );
    for group in ["finetune", "l2-sp"] {
        let row = summary
            .lines()
            .find(|l| l.starts_with(&format!("| {group} | lr=")))
            .unwrap_or_else(|| panic!("no selection row for {group}:\n{summary}"));
        assert!(
            row.contains("random search, 4 trials") && row.contains("| 0, 1 |"),
            "{row}"
        );
    }
    assert!(summary.contains("lambda="), "l2-sp's λ is shown");
    // Trials are the search, not results: the main table has final runs only.
    assert!(!summary.contains("trial=0"), "{summary}");
    for group in ["finetune", "l2-sp"] {
        let plot = results.join(format!("plots/search_debias_{group}.svg"));
        assert!(plot.is_file(), "{}", plot.display());
    }
}

/// The search of a CIFAR-10 fixture, with `test_batch.bin` then poisoned:
/// every trial reads its inputs again (the file changed) and scores
/// exactly as before, so the selection cannot change; the final runs do.
#[test]
fn selection_never_reads_the_test_split() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("cifar-10-batches-bin");
    make_fixture("cifar10", &data);
    let grid = tmp.path().join("grid.yaml");
    std::fs::write(
        &grid,
        format!(
            r#"name: poison
results: {results}
experiments:
  - name: cl
    protocol: continual
    base:
      seed: 0
      data: {{ name: cifar10, root: {data}, train_per_class: 30 }}
      classes: [0, 1, 2, 3]
      classes_per_task: 2
      backbone: {{ width: 4 }}
      batch_size: 16
      validation: {{ per_class: 8 }}
      method: {{ name: sgd, epochs: 1, optimizer: {{ lr: 0.05 }} }}
    tune:
      space:
        method.optimizer.lr: {{ loguniform: [0.001, 0.5] }}
      trials: 3
      seeds: [0]
      halving: {{ key: method.epochs, min: 1, max: 2, eta: 2 }}
"#,
            results = tmp.path().join("results").display(),
            data = data.display()
        ),
    )
    .unwrap();
    let (code, out) = run(&["run", grid.to_str().unwrap()]);
    assert_eq!(code, 0, "{out}");
    let results = tmp.path().join("results");
    let before = tuning_of(&results);
    assert_eq!(
        before.len(),
        6,
        "3 trials, the best 2 again at 2 epochs, 1 final run"
    );
    // Successive halving: rung 1 reruns the two best of rung 0.
    let rung0: Vec<_> = before
        .iter()
        .filter(|t| t.1["rung"] == 0 && t.1["role"] == "trial")
        .collect();
    let mut order: Vec<_> = rung0
        .iter()
        .map(|t| (t.2.unwrap(), t.1["trial"].as_u64().unwrap()))
        .collect();
    order.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));
    let mut rung1: Vec<u64> = before
        .iter()
        .filter(|t| t.1["rung"] == 1 && t.1["role"] == "trial")
        .map(|t| t.1["trial"].as_u64().unwrap())
        .collect();
    rung1.sort_unstable();
    let mut top2 = vec![order[0].1, order[1].1];
    top2.sort_unstable();
    assert_eq!(rung1, top2, "rung 1 holds rung 0's best two: {order:?}");
    for t in before
        .iter()
        .filter(|t| t.1["rung"] == 1 || t.1["role"] == "final")
    {
        let config: serde_json::Value = serde_json::from_str(
            &std::fs::read_to_string(results.join("cells").join(&t.0).join("config.json")).unwrap(),
        )
        .unwrap();
        assert_eq!(
            config["config"]["method"]["epochs"], 2,
            "{}: the full budget",
            t.0
        );
    }
    let final_cell = &before.iter().find(|t| t.1["role"] == "final").unwrap().0;
    let scored_before = scored(&results, final_cell);

    // Poison the test split: every label moved to the next class, every
    // pixel inverted (the file stays a valid CIFAR-10 batch).
    let test_file = data.join("test_batch.bin");
    let mut bytes = std::fs::read(&test_file).unwrap();
    for record in bytes.chunks_mut(3073) {
        record[0] = (record[0] + 1) % 10;
        for p in &mut record[1..] {
            *p = 255 - *p;
        }
    }
    std::fs::write(&test_file, bytes).unwrap();
    let (code, out) = run(&["run", grid.to_str().unwrap()]);
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains("ran again, stale"),
        "the test file is an input: {out}"
    );
    let after = tuning_of(&results);
    for ((cell, b, vb), (_, a, va)) in before.iter().zip(&after) {
        if b["role"] == "trial" {
            assert_eq!(
                vb, va,
                "{cell}: a trial's validation score moved with the test file"
            );
        }
        assert_eq!(b["values"], a["values"], "{cell}: the selection changed");
        assert_eq!(b["validation_score"], a["validation_score"], "{cell}");
    }
    let final_cell = &before.iter().find(|t| t.1["role"] == "final").unwrap().0;
    assert_ne!(
        scored(&results, final_cell),
        scored_before,
        "the final run is scored on the (poisoned) test split"
    );
}

/// The accuracies a cell's rows hold (timings left out), in order.
fn scored(results: &Path, cell: &str) -> Vec<(String, f64)> {
    let text = std::fs::read_to_string(results.join("cells").join(cell).join("rows.json")).unwrap();
    let rows: Vec<serde_json::Value> = serde_json::from_str(&text).unwrap();
    rows.iter()
        .filter(|r| r["metric"].as_str().unwrap().contains("acc"))
        .map(|r| {
            (
                r["metric"].as_str().unwrap().to_string(),
                r["value"].as_f64().unwrap(),
            )
        })
        .collect()
}

/// A continual trial is scored on class-IL accuracy alone, so its kNN and
/// adaptation evaluation are off; the final cells run both.
#[test]
fn trials_skip_the_evaluation_their_objective_does_not_read() {
    let tmp = tempfile::tempdir().unwrap();
    let text = crate::common::smoke_grid_text("continual", tmp.path())
        .replace(
            "      knn: { k: 5, temperature: 0.1 }\n",
            "      knn: { k: 5, temperature: 0.1 }\n      adaptation: { shots: 2, epochs: 1, optimizer: { lr: 0.05 } }\n      validation: { per_class: 2 }\n",
        )
        .replace(
            "      seed: [0, 1]",
            "    tune:\n      methods:\n        sgd: { method.optimizer.lr: { loguniform: [0.01, 0.1] } }\n        lp-ft: { method.ft_optimizer.lr: { loguniform: [0.01, 0.1] } }\n      trials: 2\n      seeds: [0]",
        );
    assert!(
        text.contains("tune:") && text.contains("adaptation:"),
        "{text}"
    );
    let grid = tmp.path().join("grid.yaml");
    std::fs::write(&grid, text).unwrap();
    let (code, out) = run(&["run", grid.to_str().unwrap(), "--no-report"]);
    assert_eq!(code, 0, "{out}");
    let tuned = tuning_of(&tmp.path().join("results"));
    assert!(tuned.len() >= 6, "4 trials and 2 finals: {}", tuned.len());
    for (dir, record, objective) in &tuned {
        assert!(objective.is_some(), "{dir}: scored");
        let rows: Vec<serde_json::Value> = serde_json::from_str(
            &std::fs::read_to_string(tmp.path().join("results/cells").join(dir).join("rows.json"))
                .unwrap(),
        )
        .unwrap();
        let has = |prefix: &str| {
            rows.iter()
                .any(|r| r["metric"].as_str().unwrap().starts_with(prefix))
        };
        let is_final = record["role"] == "final";
        assert_eq!(has("adapt_"), is_final, "{dir}: adaptation");
        assert_eq!(has("knn_"), is_final, "{dir}: kNN");
    }
}
