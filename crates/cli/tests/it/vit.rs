//! End to end: the ViT smoke grid through the `reusebench` binary (vit-tiny
//! pretrained, then continual learning, canonicalization and RESQUE on top
//! of it),
//! its determinism, and the ViT shapes validation must refuse.

use crate::common::{Rejection, SmokeRun, assert_smoke_rejects, cell_rows, get, scalars};
use reusebench_results::names;

#[test]
fn vit_smoke_grid_pretrains_learns_continually_and_canonicalizes() {
    let smoke = SmokeRun::new("vit", 9);
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

    // RESQUE on a ViT (read at its last block, the default layer): a score
    // for the corruption and for the new task, and the retraining's
    // parameter change reported per block.
    let resque = cell_rows(results, "resque");
    assert_eq!(resque.len(), 2);
    for (_, rows) in &resque {
        let v = scalars(rows);
        let score = get(&v, names::RESQUE_DIST).or_else(|| get(&v, names::RESQUE_TASK));
        assert!(score.is_some_and(f64::is_finite), "{v:?}");
    }
    let layers: Vec<&str> = resque
        .iter()
        .flat_map(|(_, rows)| rows.iter())
        .filter_map(|r| r["coords"][names::LAYER].as_str())
        .collect();
    assert!(layers.contains(&"block1"), "{layers:?}");

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
                from: "      retrain: { target_acc: 90, max_epochs: 1,",
                to: "      layer: layer4\n      retrain: { target_acc: 90, max_epochs: 1,",
                line_of: "layer: layer4",
                key: "layer",
                message: "the backbone has no layer `layer4` (it has block0, block1)",
            },
            Rejection {
                from: "network: escnn, layers: 2,",
                to: "network: escnn, layers: 7,",
                line_of: "layers: 7",
                key: "canonicalizer.input_size",
                message: "sees 26x26 pixels, fewer than the 29x29 its 7 layer(s) of 5x5 kernels need",
            },
            Rejection {
                from: "network: escnn",
                to: "network: e2cnn",
                line_of: "network: e2cnn",
                key: "canonicalizer.network",
                message: "unknown variant `e2cnn`, expected `custom` or `escnn`",
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

/// CIFAR-10 upsampled for a patch-16 ViT (`data.image_size`, what the
/// paper-scale grid does at 224 px), end to end at 48 px: validation
/// accepts the ViT's image size only with the upsampled data, and the
/// model trains on it.
#[test]
fn a_patch_16_vit_trains_on_upsampled_cifar() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("cifar");
    crate::common::make_fixture("cifar10", &data);
    let grid = |image_size: &str| {
        format!(
            "name: upsampled\nresults: {results}\nexperiments:\n  - name: pretrain\n    protocol: pretrain\n    base:\n      seed: 0\n      data: {{ name: cifar10, root: {data}{image_size} }}\n      backbone: {{ arch: vit, patch: 16, dim: 32, depth: 1, heads: 2, mlp_ratio: 2, image_size: 48 }}\n      epochs: 1\n      batch_size: 25\n      optimizer: {{ lr: 0.01 }}\n      output: \"{{results}}/vit.safetensors\"\n",
            results = dir.path().join("results").display(),
            data = data.display(),
        )
    };
    let native = dir.path().join("native.yaml");
    std::fs::write(&native, grid("")).unwrap();
    let (code, out) = crate::common::run(&["validate", native.to_str().unwrap()]);
    assert_ne!(code, 0);
    assert!(out.contains("the data gives 32 px"), "{out}");
    let upsampled = dir.path().join("upsampled.yaml");
    std::fs::write(&upsampled, grid(", image_size: 48")).unwrap();
    let (code, out) = crate::common::run(&["run", upsampled.to_str().unwrap()]);
    assert_eq!(code, 0, "{out}");
    let rows = cell_rows(&dir.path().join("results"), "pretrain");
    let acc = get(&scalars(&rows[0].1), "test_acc").unwrap();
    assert!((0.0..=100.0).contains(&acc), "{acc}");
    assert!(dir.path().join("results/vit.safetensors").is_file());
}
