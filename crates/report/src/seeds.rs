//! What an experiment's seeds varied, read from its cells' configs: the
//! cell's own random streams always; the class order where the grid
//! asks for it (`class_order: seeded`); the pretrained backbone where each
//! seed reads its own checkpoint (a `{seed}` in `backbone.checkpoint`, one
//! pretrain cell per seed). The report says it above the tables, so that a
//! confidence interval is read for what it covers.

use std::collections::BTreeSet;
use std::path::Path;

use reusebench_results::StoredRow;

/// The cells' configs of `exp`, as `config.json` keeps them (placeholders kept).
fn configs(results: &Path, rows: &[StoredRow], exp: &str) -> Vec<serde_json::Value> {
    let cells: BTreeSet<&str> = rows
        .iter()
        .filter(|r| r.experiment == exp)
        .map(|r| r.cell.as_str())
        .collect();
    cells
        .into_iter()
        .filter_map(|c| {
            let path = results
                .join("cells")
                .join(format!("{exp}-{c}"))
                .join("config.json");
            let doc: serde_json::Value =
                serde_json::from_str(&std::fs::read_to_string(path).ok()?).ok()?;
            Some(doc["config"].clone())
        })
        .collect()
}

/// `Seeds 0, 1, 2 vary: …; shared by every seed: ….`, or nothing for an
/// experiment run on one seed.
pub fn seeds_line(results: &Path, rows: &[StoredRow], exp: &str) -> String {
    let seeds: BTreeSet<u64> = rows
        .iter()
        .filter(|r| r.experiment == exp)
        .map(|r| r.seed)
        .collect();
    if seeds.len() < 2 {
        return String::new();
    }
    let configs = configs(results, rows, exp);
    let mut varied =
        vec!["every random stream of a cell (data order, fresh weights, sampling)".to_string()];
    let mut shared = Vec::new();
    let class_order = configs.iter().any(|c| c["class_order"] == "seeded");
    let has_classes = configs
        .iter()
        .any(|c| c.get("classes_per_task").is_some_and(|v| !v.is_null()));
    if has_classes {
        match class_order {
            true => varied.push("the class order".into()),
            false => shared.push("the class order"),
        }
    }
    let checkpoints: Vec<&str> = configs
        .iter()
        .filter_map(|c| c.pointer("/backbone/checkpoint").and_then(|v| v.as_str()))
        .collect();
    if !checkpoints.is_empty() {
        match checkpoints.iter().any(|p| p.contains("{seed}")) {
            true => varied.push("the pretrained backbone (one pretrain cell per seed)".into()),
            false => shared.push("the pretrained backbone"),
        }
    }
    let seeds: Vec<String> = seeds.iter().map(u64::to_string).collect();
    let mut line = format!("Seeds {} vary {}", seeds.join(", "), varied.join(", "));
    if !shared.is_empty() {
        line.push_str(&format!("; every seed shares {}", shared.join(" and ")));
    }
    line.push_str(": the intervals cover that variation only.\n\n");
    line
}
