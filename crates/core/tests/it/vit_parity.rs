//! torchvision's `VisionTransformer`: the ViT here takes its state dict key
//! for key (checked against `vit_b_16`'s full-size layout) and gives its
//! outputs from its weights, also after the position embeddings are
//! resampled to another image size.
//!
//! Fixtures: `tests/fixtures/torchvision/vit_*`, written by
//! `scripts/make_vit_fixtures.py` (torchvision's own model, 32 px, patch 8,
//! dim 32, depth 2, 4 heads, MLP 64, random weights and LayerNorms).

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use burn::store::{BurnToPyTorchAdapter, ModuleSnapshot, ModuleStore, SafetensorsStore};
use burn::tensor::{Device, Tensor, TensorData};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use reusebench_core::DeviceSpec;
use reusebench_core::backbone::vit::{Vit, VitSpec, harness_name, torchvision_name};
use reusebench_core::checkpoint::{ImportOptions, import_vit};
use reusebench_core::model::linear_head;

const TOLERANCE: f32 = 1e-4;

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/torchvision")
        .join(name)
}

fn tensors(name: &str) -> BTreeMap<String, (Vec<usize>, Vec<f32>)> {
    let mut store = SafetensorsStore::from_file(fixture(name));
    store
        .get_all_tensors()
        .unwrap()
        .iter()
        .map(|(name, t)| {
            let values = t
                .to_bytes()
                .unwrap()
                .chunks_exact(4)
                .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                .collect();
            (name.clone(), (t.shape.as_slice().to_vec(), values))
        })
        .collect()
}

fn spec(image_size: usize) -> VitSpec {
    VitSpec {
        image_size,
        patch: 8,
        dim: 32,
        depth: 2,
        heads: 4,
        mlp_dim: 64,
    }
}

fn device() -> Device {
    DeviceSpec::Cpu.device().unwrap()
}

/// The fixture's weights imported into a model for `image_size` images.
fn imported_at(image_size: usize) -> (Vit, burn::nn::Linear) {
    let device = device();
    let mut rng = ChaCha8Rng::seed_from_u64(0);
    let vit = Vit::new(spec(image_size), &mut rng, &device);
    let head = linear_head(&mut rng, 32, 10, &device);
    let options = ImportOptions {
        keep_head: true,
        ..ImportOptions::default()
    };
    let (vit, head, report) = import_vit(
        vit,
        Some(head),
        &fixture("vit_p8_d32.safetensors"),
        &options,
    )
    .unwrap();
    assert!(report.is_complete(), "{report}");
    // Every tensor of the file lands somewhere: 30 in the body, 2 in the head.
    assert_eq!(report.applied.len(), 32, "{report}");
    (vit, head.unwrap())
}

fn assert_close(got: Tensor<2>, expected: &(Vec<usize>, Vec<f32>), what: &str) {
    assert_eq!(got.dims().to_vec(), expected.0, "{what}: shape");
    let got = got.into_data().try_to_vec::<f32>().unwrap();
    let worst = got
        .iter()
        .zip(&expected.1)
        .map(|(a, b)| (a - b).abs())
        .fold(0f32, f32::max);
    assert!(
        worst < TOLERANCE,
        "{what}: max |diff| {worst} >= {TOLERANCE}"
    );
}

fn input(expected: &BTreeMap<String, (Vec<usize>, Vec<f32>)>, name: &str) -> Tensor<4> {
    let (shape, values) = expected[name].clone();
    Tensor::from_data(
        TensorData::new(values, [shape[0], shape[1], shape[2], shape[3]]),
        &device(),
    )
}

#[test]
fn features_and_logits_match_torchvision() {
    let expected = tensors("vit_expected.safetensors");
    let (vit, head) = imported_at(32);
    let features = vit.forward(input(&expected, "input_32"));
    assert_close(
        features.clone(),
        &expected["features_32"],
        "features at 32 px",
    );
    assert_close(
        head.forward(features),
        &expected["logits_32"],
        "logits at 32 px",
    );
}

#[test]
fn position_embeddings_resampled_as_torchvision() {
    // torchvision's interpolate_embeddings: bicubic, corners aligned, the
    // class token's embedding kept; 4x4 patches become 6x6.
    let expected = tensors("vit_expected.safetensors");
    let (vit, head) = imported_at(32);
    let vit = vit.with_image_size(48);
    let pos = vit.encoder.pos_embedding.val();
    assert_eq!(pos.dims(), [1, 37, 32]);
    assert_close(
        pos.reshape([37, 32]),
        &expected["pos_embedding_48"].clone().reshaped(),
        "position embeddings at 48 px",
    );
    let logits = head.forward(vit.forward(input(&expected, "input_48")));
    assert_close(logits, &expected["logits_48"], "logits at 48 px");
}

#[test]
fn a_checkpoint_for_another_image_size_is_resampled_on_import() {
    // The 32 px file straight into a 48 px model: the import resamples the
    // position embeddings and gives torchvision's 48 px logits.
    let expected = tensors("vit_expected.safetensors");
    let (vit, head) = imported_at(48);
    let logits = head.forward(vit.forward(input(&expected, "input_48")));
    assert_close(logits, &expected["logits_48"], "logits of the 48 px import");
}

#[test]
fn vit_b_16_layout_is_torchvisions_key_for_key() {
    // The full-size model's parameter paths, mapped to torchvision's names,
    // are vit_b_16's state dict less its head, shape for shape.
    let layout: Vec<(String, Vec<usize>)> =
        serde_json::from_str(&std::fs::read_to_string(fixture("vit_b_16_layout.json")).unwrap())
            .unwrap();
    let theirs: BTreeSet<(String, Vec<usize>)> = layout
        .into_iter()
        .filter(|(name, _)| !name.starts_with("heads."))
        .collect();
    let device = device();
    let b16 = VitSpec {
        image_size: 224,
        patch: 16,
        dim: 768,
        depth: 12,
        heads: 12,
        mlp_dim: 3072,
    };
    let vit = Vit::new(b16, &mut ChaCha8Rng::seed_from_u64(0), &device);
    // Through burn's PyTorch adapter (linear weights transposed, LayerNorm
    // gamma/beta as weight/bias), then our names mapped to torchvision's.
    let adapter = Some(Box::new(BurnToPyTorchAdapter) as Box<dyn burn::store::ModuleAdapter>);
    let ours: BTreeSet<(String, Vec<usize>)> = vit
        .collect(None, adapter, false)
        .iter()
        .map(|s| (torchvision_name(&s.name), s.shape.as_slice().to_vec()))
        .collect();
    assert_eq!(ours, theirs);
    assert_eq!(vit.feature_dim(), 768);
    // And the names go back.
    for (name, _) in &theirs {
        assert_eq!(torchvision_name(&harness_name(name)), *name);
    }
}

#[test]
fn a_spec_that_does_not_divide_is_named() {
    let mut bad = spec(30);
    assert_eq!(bad.check().unwrap_err().0, "patch");
    assert!(bad.check().unwrap_err().1.contains("image_size 30"));
    bad = VitSpec {
        heads: 5,
        ..spec(32)
    };
    assert_eq!(bad.check().unwrap_err().0, "heads");
    assert!(bad.check().unwrap_err().1.contains("heads 5"));
    assert!(spec(32).check().is_ok());
    assert_eq!(spec(32).tokens(), 17);
}

/// Rows of a `[1, n, d]` expected tensor as `[n, d]`.
trait Reshaped {
    fn reshaped(self) -> Self;
}

impl Reshaped for (Vec<usize>, Vec<f32>) {
    fn reshaped(self) -> Self {
        (self.0[1..].to_vec(), self.1)
    }
}
