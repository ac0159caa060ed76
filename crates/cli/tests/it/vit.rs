//! End to end: the ViT smoke grid through the `reusebench` binary (vit-tiny
//! pretrained, then continual learning and canonicalization on top of it),
//! its determinism, and the ViT shapes validation must refuse.

use crate::common::{Rejection, SmokeRun, assert_smoke_rejects, cell_rows, get, scalars};
use reusebench_results::names;

#[test]
fn vit_smoke_grid_pretrains_learns_continually_and_canonicalizes() {
    let smoke = SmokeRun::new("vit", 7);
    let results = &smoke.results;

    // The ViT learns: above chance (4 classes) on the held-out images.
    let pretrain = cell_rows(results, "pretrain");
    let acc = get(&scalars(&pretrain[0].1), "test_acc").unwrap();
    assert!(acc > 25.0, "pretrained vit-tiny at chance: {acc}");

    let continual = cell_rows(results, "continual");
    let mut methods: Vec<&str> = continual.iter().map(|(m, _)| m.as_str()).collect();
    methods.sort();
    assert_eq!(methods, ["ewc", "lp-ft", "sgd", "side-tuning"]);
    for (method, rows) in &continual {
        let v = scalars(rows);
        for m in [names::KNN_ACC, "avg_acc_class_il"] {
            let x = get(&v, m).unwrap_or_else(|| panic!("{method}: {m}"));
            assert!((0.0..=100.0).contains(&x), "{method}: {m} = {x}");
        }
    }

    // The canonicalized ViT is exactly invariant to quarter turns (C4);
    // the plain one is not.
    let canonicalize = cell_rows(results, "canonicalize");
    for (method, rows) in &canonicalize {
        let error = get(&scalars(rows), names::INVARIANCE_ERROR).unwrap();
        let at: Vec<f64> = rows
            .iter()
            .filter(|r| r["metric"] == names::ACC_ROTATED)
            .filter(|r| r["coords"][names::ANGLE].as_f64().unwrap() % 90.0 == 0.0)
            .map(|r| r["value"].as_f64().unwrap())
            .collect();
        assert_eq!(at.len(), 4);
        if method == "canon-prior" {
            assert_eq!(error, 0.0);
            assert!(at.iter().all(|&a| a == at[0]), "{at:?}");
        } else {
            assert!(
                error > 0.0,
                "{method}: vanilla ViT invariant to quarter turns?"
            );
        }
    }

    smoke.assert_rerun_identical("continual", &continual);
}

#[test]
fn validate_rejects_vit_shapes_with_file_line_and_key() {
    assert_smoke_rejects(
        "vit",
        &[
            Rejection {
                from: "backbone: { arch: vit-tiny, depth: 2 }",
                to: "backbone: { arch: vit-tiny, depth: 2, heads: 5 }",
                line_of: "heads: 5",
                key: "backbone.heads",
                message: "dim 192 is not a multiple of heads 5",
            },
            Rejection {
                from: "backbone: { arch: vit-tiny, depth: 2 }",
                to: "backbone: { arch: vit-tiny, depth: 2, image_size: 64 }",
                line_of: "image_size: 64",
                key: "backbone.image_size",
                message: "position embeddings are for 64 px images, the data gives 32 px",
            },
            Rejection {
                from: "backbone: { arch: vit-tiny, depth: 2 }",
                to: "backbone: { arch: vit, depth: 2 }",
                line_of: "arch: vit,",
                key: "backbone.patch",
                message: "arch `vit` needs patch",
            },
            Rejection {
                from: "backbone: { arch: vit-tiny, depth: 2 }",
                to: "backbone: { arch: resnet18-cifar, depth: 2 }",
                line_of: "arch: resnet18-cifar",
                key: "backbone.depth",
                message: "depth shapes a ViT",
            },
        ],
    );
}

#[test]
fn convert_imports_torchvision_vit_weights_and_resamples_positions() {
    // torchvision's own small ViT (32 px, patch 8, dim 32, depth 2, 4 heads,
    // MLP 64) converted for 48 px images, then a wrong depth refused by name.
    let tmp = tempfile::tempdir().unwrap();
    let fixture =
        crate::common::repo().join("crates/core/tests/fixtures/torchvision/vit_p8_d32.safetensors");
    let convert = |depth: &str, out: &str| {
        let out = tmp.path().join(out);
        crate::common::run(&[
            "convert",
            fixture.to_str().unwrap(),
            "--arch",
            "vit",
            "--patch",
            "8",
            "--dim",
            "32",
            "--depth",
            depth,
            "--heads",
            "4",
            "--mlp-ratio",
            "2",
            "--image-size",
            "48",
            "-o",
            out.to_str().unwrap(),
        ])
    };
    let (code, out) = convert("2", "vit48.safetensors");
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("30 tensor(s) applied"), "{out}");
    assert!(out.contains("image size 48"), "{out}");
    assert!(tmp.path().join("vit48.safetensors").is_file());
    let (code, out) = convert("3", "deeper.safetensors");
    assert_ne!(code, 0, "{out}");
    assert!(
        out.contains("missing in the checkpoint") && out.contains("encoder.layers.encoder_layer_2"),
        "{out}"
    );
}
