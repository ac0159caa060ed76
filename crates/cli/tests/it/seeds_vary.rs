//! The report says what the seeds varied: with a pretrain cell per seed
//! (`{seed}` in the checkpoint path) and `class_order: seeded`, both; by
//! default neither (only the data order and fresh weights).

use crate::common::{run, smoke_grid_text};

fn seeds_line(summary: &str, exp: &str) -> String {
    let at = summary.find(&format!("## {exp} (")).unwrap();
    summary[at..]
        .lines()
        .find(|l| l.starts_with("Seeds "))
        .unwrap_or_default()
        .to_string()
}

#[test]
fn the_report_says_what_the_seeds_varied() {
    let tmp = tempfile::tempdir().unwrap();
    let grid = tmp.path().join("continual.yaml");
    let text = smoke_grid_text("continual", tmp.path());
    std::fs::write(&grid, &text).unwrap();
    let (code, out) = run(&["run", grid.to_str().unwrap()]);
    assert_eq!(code, 0, "{out}");
    let summary = std::fs::read_to_string(tmp.path().join("results/summary.md")).unwrap();
    let line = seeds_line(&summary, "continual");
    assert!(
        line.contains("vary every random stream of a cell (data order, fresh weights, sampling)"),
        "{line}"
    );
    assert!(
        line.contains("every seed shares the class order and the pretrained backbone"),
        "{line}"
    );

    // One pretrain cell per seed and a seeded class order.
    let per_seed = text
        .replace(
            "      output: \"{results}/pretrained/backbone.safetensors\"",
            "      output: \"{results}/pretrained/backbone-{seed}.safetensors\"\n    axes:\n      seed: [0, 1]",
        )
        .replace(
            "checkpoint: \"{results}/pretrained/backbone.safetensors\" }",
            "checkpoint: \"{results}/pretrained/backbone-{seed}.safetensors\" }\n      class_order: seeded",
        )
        .replace(&format!("results: {}", tmp.path().join("results").display()), &format!("results: {}", tmp.path().join("per-seed").display()));
    assert_ne!(per_seed, text);
    let grid = tmp.path().join("per-seed.yaml");
    std::fs::write(&grid, &per_seed).unwrap();
    let (code, out) = run(&["run", grid.to_str().unwrap()]);
    assert_eq!(code, 0, "{out}");
    let summary = std::fs::read_to_string(tmp.path().join("per-seed/summary.md")).unwrap();
    let line = seeds_line(&summary, "continual");
    assert!(
        line.contains("the class order")
            && line.contains("the pretrained backbone (one pretrain cell per seed)")
            && !line.contains("shares"),
        "{line}"
    );
    // Both at once is refused, at its key.
    let both = per_seed.replace(
        "class_order: seeded",
        "class_order: seeded\n      class_order_seed: 3",
    );
    std::fs::write(&grid, both).unwrap();
    let (code, out) = run(&["validate", grid.to_str().unwrap()]);
    assert_eq!(code, 2, "{out}");
    assert!(
        out.contains("key `class_order`") && out.contains("leave class_order_seed out"),
        "{out}"
    );
}
