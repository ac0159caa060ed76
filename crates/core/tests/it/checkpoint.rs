//! Checkpoints: a saved backbone loads back to the same outputs (running
//! batch-norm statistics included); mismatches are errors naming the keys.

use std::sync::Arc;

use burn::tensor::{Device, Tensor, TensorData};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use reusebench_core::DeviceSpec;
use reusebench_core::NoProgress;
use reusebench_core::backbone::BackboneConfig;
use reusebench_core::checkpoint::{load_backbone, save_backbone};
use reusebench_core::model::{Classifier, build_backbone, linear_head};
use reusebench_core::testing::plain_stage;
use reusebench_core::train::{NoHooks, OptimConfig, fit};
use reusebench_data::synthetic;

fn device() -> Device {
    DeviceSpec::for_tests()
}

fn input(device: &Device) -> Tensor<4> {
    let values: Vec<f32> = (0..2 * 3 * 8 * 8)
        .map(|i| ((i * 37 % 101) as f32 / 50.0) - 1.0)
        .collect();
    Tensor::from_data(TensorData::new(values, [2, 3, 8, 8]), device)
}

fn out(b: &reusebench_core::backbone::Backbone, device: &Device) -> Vec<f32> {
    use burn::module::Module;
    b.valid()
        .forward(input(device))
        .into_data()
        .try_into_vec::<f32>()
        .unwrap()
}

#[test]
fn trained_backbone_round_trips() {
    let dev = device();
    let train_dev = dev.clone().autodiff();
    let cfg = BackboneConfig {
        width: 4,
        ..Default::default()
    };
    let mut rng = ChaCha8Rng::seed_from_u64(1);
    let backbone = build_backbone(&cfg, &mut rng, &train_dev);
    let head = linear_head(&mut rng, cfg.feature_dim(), 3, &train_dev);
    // A little training moves the weights and the batch-norm running statistics.
    let data = synthetic::generate(3, 8, 2, 0).unwrap();
    let optim = OptimConfig::sgd(0.05);
    let stage = plain_stage(&optim, 8, data.normalization, 3);
    let (model, _) = fit(
        Classifier::new(backbone, head),
        &Arc::new(data.train),
        &stage,
        &mut NoHooks,
        &train_dev,
        &NoProgress,
    )
    .unwrap();

    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("sub/backbone.safetensors");
    save_backbone(model.backbone(), &cfg, &path).unwrap();
    let fresh = build_backbone(&cfg, &mut ChaCha8Rng::seed_from_u64(99), &dev);
    let before = out(&fresh, &dev);
    let loaded = load_backbone(fresh, &path).unwrap();
    let expected = out(model.backbone(), &dev);
    let got = out(&loaded, &dev);
    assert_ne!(before, expected);
    for (a, b) in got.iter().zip(&expected) {
        assert!((a - b).abs() < 1e-5, "{a} vs {b}");
    }
}

#[test]
fn mismatched_or_corrupt_checkpoints_are_errors() {
    let dev = device();
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("w4.safetensors");
    let cfg4 = BackboneConfig {
        width: 4,
        ..Default::default()
    };
    let b4 = build_backbone(&cfg4, &mut ChaCha8Rng::seed_from_u64(1), &dev);
    save_backbone(&b4, &cfg4, &path).unwrap();

    let cfg8 = BackboneConfig {
        width: 8,
        ..Default::default()
    };
    let b8 = build_backbone(&cfg8, &mut ChaCha8Rng::seed_from_u64(1), &dev);
    let err = load_backbone(b8, &path).unwrap_err().to_string();
    assert!(err.contains("w4.safetensors"), "{err}");
    assert!(err.contains("conv1"), "error should name keys: {err}");

    let corrupt = tmp.path().join("corrupt.safetensors");
    std::fs::write(&corrupt, b"not a safetensors file").unwrap();
    let b4 = build_backbone(&cfg4, &mut ChaCha8Rng::seed_from_u64(1), &dev);
    let err = load_backbone(b4, &corrupt).unwrap_err().to_string();
    assert!(err.contains("corrupt.safetensors"), "{err}");

    let b4 = build_backbone(&cfg4, &mut ChaCha8Rng::seed_from_u64(1), &dev);
    let err = load_backbone(b4, &tmp.path().join("absent.safetensors"))
        .unwrap_err()
        .to_string();
    assert!(err.contains("file not found"), "{err}");
}

/// The same weights give the same bytes: burn-store keeps the metadata in a
/// hash map, whose order changed from one save to the next, and a changed
/// checkpoint digest makes every cell that reads it stale.
#[test]
fn saving_the_same_weights_twice_gives_the_same_bytes() {
    let dev = device();
    let tmp = tempfile::tempdir().unwrap();
    let cfg = BackboneConfig {
        width: 4,
        ..Default::default()
    };
    let backbone = build_backbone(&cfg, &mut ChaCha8Rng::seed_from_u64(3), &dev);
    let files: Vec<Vec<u8>> = (0..6)
        .map(|i| {
            let path = tmp.path().join(format!("copy{i}.safetensors"));
            save_backbone(&backbone, &cfg, &path).unwrap();
            std::fs::read(&path).unwrap()
        })
        .collect();
    for (i, bytes) in files.iter().enumerate().skip(1) {
        assert!(bytes == &files[0], "save {i} differs from save 0");
    }

    let len = u64::from_le_bytes(files[0][..8].try_into().unwrap()) as usize;
    let header: serde_json::Value = serde_json::from_slice(&files[0][8..8 + len]).unwrap();
    let keys: Vec<&String> = header["__metadata__"].as_object().unwrap().keys().collect();
    let mut sorted = keys.clone();
    sorted.sort();
    assert_eq!(keys, sorted);
    assert!(keys.iter().any(|k| *k == "reusebench.width"), "{keys:?}");
    // And it still loads: the header's rewrite kept the data offsets.
    let fresh = build_backbone(&cfg, &mut ChaCha8Rng::seed_from_u64(99), &dev);
    let loaded = load_backbone(fresh, &tmp.path().join("copy5.safetensors")).unwrap();
    assert_eq!(out(&loaded, &dev), out(&backbone, &dev));
}
