//! torchvision checkpoints: the ResNets here have torchvision's layout
//! (checked key for key against torchvision's own state dicts at full size)
//! and produce PyTorch's outputs from PyTorch-written weights.
//!
//! Fixtures: `tests/fixtures/torchvision/`, written by
//! `scripts/make_torchvision_fixtures.py` (PyTorch 2.9, torchvision 0.24):
//! width-4 ResNet-18 / ResNet-50 with random weights and running statistics,
//! as `.pth`, `.safetensors` and a wrapped `.pth` ({"state_dict": ..., with
//! `module.` prefixes}), and PyTorch's eval-mode outputs on a fixed input.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use burn::module::Module;
use burn::store::{ModuleSnapshot, ModuleStore, SafetensorsStore};
use burn::tensor::{Device, Tensor, TensorData};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use reusebench_core::DeviceSpec;
use reusebench_core::backbone::{Arch, Backbone, BackboneConfig};
use reusebench_core::checkpoint::{
    ImportOptions, LoadReport, import_torchvision, load_backbone, save_backbone,
};
use reusebench_core::model::linear_head;

const TOLERANCE: f32 = 1e-4;

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/torchvision")
        .join(name)
}

fn expected() -> BTreeMap<String, (Vec<usize>, Vec<f32>)> {
    let mut store = SafetensorsStore::from_file(fixture("expected.safetensors"));
    store
        .get_all_tensors()
        .unwrap()
        .iter()
        .map(|(name, t)| {
            let bytes = t.to_bytes().unwrap();
            let values = bytes
                .chunks_exact(4)
                .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                .collect();
            (name.clone(), (t.shape.as_slice().to_vec(), values))
        })
        .collect()
}

fn input(device: &Device) -> Tensor<4> {
    let (shape, values) = expected().remove("input").unwrap();
    Tensor::from_data(
        TensorData::new(values, [shape[0], shape[1], shape[2], shape[3]]),
        device,
    )
}

fn config(arch: Arch, maxpool: Option<bool>) -> BackboneConfig {
    BackboneConfig {
        arch,
        width: 4,
        maxpool,
        ..Default::default()
    }
}

fn fresh(cfg: &BackboneConfig, device: &Device) -> Backbone {
    cfg.build(&mut ChaCha8Rng::seed_from_u64(5), device)
}

fn assert_close(what: &str, got: &[f32], want: &[f32]) {
    assert_eq!(got.len(), want.len(), "{what}: length");
    let worst = got
        .iter()
        .zip(want)
        .map(|(a, b)| (a - b).abs())
        .fold(0.0f32, f32::max);
    assert!(
        worst <= TOLERANCE,
        "{what}: max abs difference {worst} > {TOLERANCE}"
    );
}

fn import(
    cfg: &BackboneConfig,
    file: &str,
    options: ImportOptions,
) -> (Backbone, Option<burn::nn::Linear>, LoadReport) {
    let dev = DeviceSpec::for_tests();
    let head = linear_head(
        &mut ChaCha8Rng::seed_from_u64(6),
        cfg.feature_dim(),
        10,
        &dev,
    );
    import_torchvision(fresh(cfg, &dev), Some(head), &fixture(file), &options).unwrap()
}

/// Imports `file` with its head and compares features and logits with PyTorch's.
fn check_parity(arch: Arch, file: &str, options: ImportOptions, maxpool: Option<bool>, key: &str) {
    let dev = DeviceSpec::for_tests();
    let cfg = config(arch, maxpool);
    let (backbone, head, report) = import(
        &cfg,
        file,
        ImportOptions {
            keep_head: true,
            ..options
        },
    );
    assert!(report.is_complete(), "{file}: {report}");
    assert!(report.dropped_head.is_empty());
    let want = expected();
    // Control: without the import the outputs are far from PyTorch's.
    let random = fresh(&cfg, &dev)
        .forward(input(&dev))
        .into_data()
        .try_to_vec::<f32>()
        .unwrap();
    let far = random
        .iter()
        .zip(&want[&format!("{key}.features")].1)
        .any(|(a, b)| (a - b).abs() > 100.0 * TOLERANCE);
    assert!(
        far,
        "{file}: the control already matches; the parity check would prove nothing"
    );
    let features = backbone.valid().forward(input(&dev));
    assert_close(
        &format!("{file} features"),
        &features.clone().into_data().try_to_vec::<f32>().unwrap(),
        &want[&format!("{key}.features")].1,
    );
    if let Some((_, logits)) = want.get(&format!("{key}.logits")) {
        let out = head.unwrap().forward(features);
        assert_close(
            &format!("{file} logits"),
            &out.into_data().try_to_vec::<f32>().unwrap(),
            logits,
        );
    }
}

#[test]
fn resnet18_pth_matches_pytorch() {
    check_parity(
        Arch::ResNet18,
        "resnet18_w4.pth",
        ImportOptions::default(),
        None,
        "resnet18",
    );
}

#[test]
fn resnet18_safetensors_matches_pytorch() {
    check_parity(
        Arch::ResNet18,
        "resnet18_w4.safetensors",
        ImportOptions::default(),
        None,
        "resnet18",
    );
}

#[test]
fn resnet50_pth_matches_pytorch() {
    check_parity(
        Arch::ResNet50,
        "resnet50_w4.pth",
        ImportOptions::default(),
        None,
        "resnet50",
    );
}

#[test]
fn resnet50_safetensors_matches_pytorch() {
    check_parity(
        Arch::ResNet50,
        "resnet50_w4.safetensors",
        ImportOptions::default(),
        None,
        "resnet50",
    );
}

#[test]
fn resnet18_without_maxpool_matches_pytorch() {
    check_parity(
        Arch::ResNet18,
        "resnet18_w4.pth",
        ImportOptions::default(),
        Some(false),
        "resnet18_nomaxpool",
    );
}

#[test]
fn wrapped_data_parallel_checkpoint_needs_its_key_and_loses_the_prefix() {
    let options = ImportOptions {
        top_level_key: Some("state_dict".into()),
        ..Default::default()
    };
    check_parity(
        Arch::ResNet18,
        "resnet18_w4_wrapped.pth",
        options.clone(),
        None,
        "resnet18",
    );
    let (_, _, report) = import(
        &config(Arch::ResNet18, None),
        "resnet18_w4_wrapped.pth",
        options,
    );
    assert!(report.stripped_prefix);

    // Without the key the state dict is not at the top level: an error, not a silent empty load.
    let dev = DeviceSpec::for_tests();
    let cfg = config(Arch::ResNet18, None);
    let err = import_torchvision(
        fresh(&cfg, &dev),
        None,
        &fixture("resnet18_w4_wrapped.pth"),
        &ImportOptions::default(),
    )
    .unwrap_err()
    .to_string();
    assert!(err.contains("resnet18_w4_wrapped.pth"), "{err}");
}

#[test]
fn head_is_dropped_unless_kept_and_the_report_says_so() {
    let cfg = config(Arch::ResNet18, None);
    let (_, _, report) = import(&cfg, "resnet18_w4.safetensors", ImportOptions::default());
    assert!(report.is_complete(), "{report}");
    assert_eq!(report.dropped_head, ["fc.bias", "fc.weight"]);
    // 20 batch norms in a ResNet-18, each with a num_batches_tracked counter.
    assert_eq!(report.ignored.len(), 20);
    // conv1 + 20 batch norms x 4 tensors + 19 further convolutions (incl. 3 shortcuts).
    assert_eq!(report.applied.len(), 20 * 4 + 20);
    let text = report.to_string();
    assert!(
        text.contains("100 tensor(s) applied") && text.contains("head dropped: fc.bias, fc.weight"),
        "{text}"
    );
}

#[test]
fn mismatched_checkpoints_are_errors_that_name_the_keys() {
    let dev = DeviceSpec::for_tests();
    // ResNet-50 weights into a ResNet-18.
    let cfg = config(Arch::ResNet18, None);
    let err = import_torchvision(
        fresh(&cfg, &dev),
        None,
        &fixture("resnet50_w4.pth"),
        &ImportOptions::default(),
    )
    .unwrap_err()
    .to_string();
    assert!(err.contains("resnet50_w4.pth"), "{err}");
    assert!(
        err.contains("unused") && err.contains("layer1.0.conv3.weight"),
        "{err}"
    );
    assert!(err.contains("shape mismatch"), "{err}");

    // Width 8 expected, width 4 found.
    let cfg8 = BackboneConfig {
        width: 8,
        ..config(Arch::ResNet18, None)
    };
    let err = import_torchvision(
        fresh(&cfg8, &dev),
        None,
        &fixture("resnet18_w4.safetensors"),
        &ImportOptions::default(),
    )
    .unwrap_err()
    .to_string();
    assert!(
        err.contains("conv1.weight: model [8, 3, 7, 7], checkpoint [4, 3, 7, 7]"),
        "{err}"
    );

    // A kept head with the wrong number of classes.
    let head = linear_head(&mut ChaCha8Rng::seed_from_u64(6), 32, 7, &dev);
    let options = ImportOptions {
        keep_head: true,
        ..Default::default()
    };
    let err = import_torchvision(
        fresh(&cfg, &dev),
        Some(head),
        &fixture("resnet18_w4.pth"),
        &options,
    )
    .unwrap_err()
    .to_string();
    assert!(err.contains("fc.weight"), "{err}");

    // allow_partial loads what fits and reports the rest.
    let options = ImportOptions {
        allow_partial: true,
        ..Default::default()
    };
    let (_, _, report) = import_torchvision(
        fresh(&cfg, &dev),
        None,
        &fixture("resnet50_w4.pth"),
        &options,
    )
    .unwrap();
    assert!(!report.is_complete());
    assert!(
        report.unused.iter().any(|k| k == "layer1.0.conv3.weight"),
        "{report}"
    );
    assert!(!report.mismatched.is_empty());
}

#[test]
fn corrupt_missing_and_unknown_files_are_errors_naming_the_file() {
    let dev = DeviceSpec::for_tests();
    let cfg = config(Arch::ResNet18, None);
    let tmp = tempfile::tempdir().unwrap();
    let bytes = std::fs::read(fixture("resnet18_w4.pth")).unwrap();
    let cases = [
        ("truncated.pth", bytes[..bytes.len() / 2].to_vec()),
        ("garbage.safetensors", b"not a safetensors file".to_vec()),
        ("weights.onnx", bytes.clone()),
    ];
    for (name, content) in cases {
        let path = tmp.path().join(name);
        std::fs::write(&path, content).unwrap();
        let err = import_torchvision(fresh(&cfg, &dev), None, &path, &ImportOptions::default())
            .unwrap_err()
            .to_string();
        assert!(err.contains(name), "{name}: {err}");
    }
    let err = import_torchvision(
        fresh(&cfg, &dev),
        None,
        &tmp.path().join("absent.pth"),
        &ImportOptions::default(),
    )
    .unwrap_err()
    .to_string();
    assert!(
        err.contains("absent.pth") && err.contains("not found"),
        "{err}"
    );
}

#[test]
fn imported_weights_survive_the_harness_checkpoint_format() {
    let dev = DeviceSpec::for_tests();
    let cfg = config(Arch::ResNet50, None);
    let (backbone, _, _) = import(&cfg, "resnet50_w4.safetensors", ImportOptions::default());
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("converted.safetensors");
    save_backbone(&backbone, &cfg, &path).unwrap();
    let loaded = load_backbone(fresh(&cfg, &dev), &path).unwrap();
    let out = loaded
        .valid()
        .forward(input(&dev))
        .into_data()
        .try_to_vec::<f32>()
        .unwrap();
    assert_close(
        "converted resnet50",
        &out,
        &expected()["resnet50.features"].1,
    );
}

/// Full-size layouts (width 64, as torchvision builds them) have torchvision's
/// parameter names and shapes, key for key; the list was written by the
/// fixture script from torchvision 0.24's own models.
#[test]
fn full_size_layouts_equal_torchvision() {
    let text = std::fs::read_to_string(fixture("torchvision_layout.json")).unwrap();
    let doc: serde_json::Value = serde_json::from_str(&text).unwrap();
    let dev = DeviceSpec::for_tests();
    for (arch, name) in [(Arch::ResNet18, "resnet18"), (Arch::ResNet50, "resnet50")] {
        let theirs: Vec<(String, Vec<usize>)> = doc["layouts"][name]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| {
                let shape = e[1]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|d| d.as_u64().unwrap() as usize)
                    .collect();
                (e[0].as_str().unwrap().to_string(), shape)
            })
            .filter(|(k, _)| !k.ends_with("num_batches_tracked") && !k.starts_with("fc."))
            .collect();
        let cfg = BackboneConfig {
            arch,
            width: 64,
            ..Default::default()
        };
        let model = fresh(&cfg, &dev);
        // The ResNet itself (what checkpoints hold), not the Backbone enum
        // around it, whose variant would prefix every path.
        let mut ours: Vec<(String, Vec<usize>)> = model
            .as_resnet()
            .unwrap()
            .collect(None, None, false)
            .iter()
            .map(|s| {
                let path = s
                    .name
                    .replace(".downsample.conv.", ".downsample.0.")
                    .replace(".downsample.bn.", ".downsample.1.")
                    .replace(".gamma", ".weight")
                    .replace(".beta", ".bias");
                (path, s.shape.as_slice().to_vec())
            })
            .collect();
        let mut theirs = theirs;
        ours.sort();
        theirs.sort();
        assert_eq!(ours, theirs, "{name}");
        assert_eq!(
            cfg.feature_dim(),
            if name == "resnet50" { 2048 } else { 512 }
        );
    }
}
