//! Importance estimates against independent computations: MAS against
//! finite differences of ‖f(x)‖², the empirical Fisher against the closed
//! form of a softmax layer's log-likelihood gradient.

use std::sync::Arc;

use burn::module::{Module, Param};
use burn::tensor::{Device, Tensor, TensorData};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use reusebench_core::DeviceSpec;
use reusebench_core::NoProgress;
use reusebench_core::features::features;
use reusebench_core::model::Classifier;
use reusebench_core::penalties::{
    ImportanceKind, importance, quadratic_penalty, snapshot, table_values,
};
use reusebench_data::{ImageSet, Normalization};

const NORM: Normalization = Normalization {
    mean: [0.5; 3],
    std: [0.25; 3],
};
const CLASSES: usize = 3;

fn tiny(device: &Device) -> Classifier {
    reusebench_core::testing::tiny_classifier(2, CLASSES, 3, device)
}

fn images() -> Arc<ImageSet> {
    let mut rng = ChaCha8Rng::seed_from_u64(11);
    let mut set = ImageSet::empty(3, 4, 4);
    for i in 0..3 {
        let img: Vec<u8> = (0..48).map(|_| rng.random()).collect();
        set.push(&img, i % CLASSES as u32);
    }
    Arc::new(set)
}

fn input(set: &ImageSet, i: usize, device: &Device) -> Tensor<4> {
    let v: Vec<f32> = set
        .image(i)
        .iter()
        .enumerate()
        .map(|(k, &p)| (p as f32 / 255.0 - NORM.mean[k / 16]) / NORM.std[k / 16])
        .collect();
    Tensor::from_data(TensorData::new(v, [1, 3, 4, 4]), device)
}

fn host<const D: usize>(t: Tensor<D>) -> Vec<f32> {
    t.into_data().try_into_vec::<f32>().unwrap()
}

fn with_value<const D: usize>(t: &Tensor<D>, k: usize, delta: f32) -> Param<Tensor<D>> {
    let shape = t.shape();
    let mut v = host(t.clone());
    v[k] += delta;
    Param::from_tensor(Tensor::from_data(TensorData::new(v, shape), &t.device()))
}

fn sq_norm(model: &Classifier, x: Tensor<4>) -> f64 {
    host(model.forward(x))
        .iter()
        .map(|&v| (v as f64).powi(2))
        .sum()
}

#[test]
fn mas_importance_matches_finite_differences() {
    let dev = DeviceSpec::for_tests();
    let train_dev = dev.clone().autodiff();
    let model = tiny(&train_dev);
    let set = images();
    let omega = importance(
        &model,
        &set,
        NORM,
        ImportanceKind::Mas,
        None,
        0,
        &train_dev,
        &NoProgress,
    )
    .unwrap();

    // Finite differences on an evaluation copy (batch norm on running statistics).
    let eval = model.valid();
    let eps = 2e-3f32;
    let fd = |perturb: &dyn Fn(&Classifier, f32) -> Classifier| -> f64 {
        (0..set.len())
            .map(|i| {
                let up = sq_norm(&perturb(&eval, eps), input(&set, i, &dev));
                let down = sq_norm(&perturb(&eval, -eps), input(&set, i, &dev));
                ((up - down) / (2.0 * eps as f64)).abs()
            })
            .sum::<f64>()
            / set.len() as f64
    };
    let head_w = table_values(&omega, &model.head.weight.id).unwrap();
    let conv_w = table_values(
        &omega,
        &model.backbone().as_resnet().unwrap().conv1.weight.id,
    )
    .unwrap();
    let mut checked = 0;
    for k in [0usize, 5, 11, 20] {
        let want = fd(&|m, d| {
            let mut m = m.clone();
            m.head.weight = with_value(&m.head.weight.val(), k, d);
            m
        });
        let got = head_w[k] as f64;
        assert!(
            (got - want).abs() <= 1e-3 + 1e-2 * want,
            "head.weight[{k}]: {got} vs {want}"
        );
        checked += 1;
    }
    for k in [0usize, 7, 30, 53] {
        let want = fd(&|m, d| {
            let mut m = m.clone();
            {
                let value = with_value(&m.backbone().as_resnet().unwrap().conv1.weight.val(), k, d);
                m.backbone_mut().as_resnet_mut().unwrap().conv1.weight = value;
            }
            m
        });
        let got = conv_w[k] as f64;
        assert!(
            (got - want).abs() <= 1e-3 + 3e-2 * want,
            "conv1.weight[{k}]: {got} vs {want}"
        );
        checked += 1;
    }
    assert_eq!(checked, 8);
    assert!(
        head_w.iter().any(|&v| v > 1e-3),
        "importance must not be all zero"
    );
}

#[test]
fn fisher_matches_the_softmax_closed_form() {
    for kind in [ImportanceKind::Fisher, ImportanceKind::FisherWeighted] {
        fisher_closed_form(kind);
    }
}

/// The empirical Fisher, or Mammoth's with each sample weighted by p(y|x).
fn fisher_closed_form(kind: ImportanceKind) {
    let dev = DeviceSpec::for_tests();
    let train_dev = dev.clone().autodiff();
    let model = tiny(&train_dev);
    let set = images();
    let fisher = importance(&model, &set, NORM, kind, None, 0, &train_dev, &NoProgress).unwrap();

    // d(-log p_y)/dW[j][c] = z_j (p_c - [c = y]); d/db[c] = p_c - [c = y].
    let z = features(&model, &set, 8, NORM, &train_dev);
    let w = host(model.head.weight.val().inner()); // [in, out]
    let b = host(model.head.bias.as_ref().unwrap().val().inner());
    let dim = z.dim;
    let mut want_w = vec![0f64; dim * CLASSES];
    let mut want_b = vec![0f64; CLASSES];
    for i in 0..set.len() {
        let zi = z.row(i);
        let logits: Vec<f64> = (0..CLASSES)
            .map(|c| {
                b[c] as f64
                    + (0..dim)
                        .map(|j| zi[j] as f64 * w[j * CLASSES + c] as f64)
                        .sum::<f64>()
            })
            .collect();
        let m = logits.iter().cloned().fold(f64::MIN, f64::max);
        let e: Vec<f64> = logits.iter().map(|l| (l - m).exp()).collect();
        let s: f64 = e.iter().sum();
        let y = set.labels[i] as usize;
        let weight = match kind {
            ImportanceKind::FisherWeighted => e[y] / s,
            _ => 1.0,
        };
        for c in 0..CLASSES {
            let r = e[c] / s - (c == y) as u8 as f64;
            want_b[c] += weight * r * r / set.len() as f64;
            for j in 0..dim {
                want_w[j * CLASSES + c] += weight * (zi[j] as f64 * r).powi(2) / set.len() as f64;
            }
        }
    }
    let got_w = table_values(&fisher, &model.head.weight.id).unwrap();
    let got_b = table_values(&fisher, &model.head.bias.as_ref().unwrap().id).unwrap();
    for (k, (&g, &e)) in got_w.iter().zip(&want_w).enumerate() {
        assert!(
            (g as f64 - e).abs() <= 1e-5 + 1e-3 * e,
            "{kind:?} W[{k}]: {g} vs {e}"
        );
    }
    for (c, (&g, &e)) in got_b.iter().zip(&want_b).enumerate() {
        assert!(
            (g as f64 - e).abs() <= 1e-5 + 1e-3 * e,
            "{kind:?} b[{c}]: {g} vs {e}"
        );
    }
    // Every trainable tensor has an entry; running statistics do not.
    assert_eq!(fisher.len(), snapshot(&model).len());
}

#[test]
fn quadratic_penalty_is_the_weighted_squared_distance() {
    let dev = DeviceSpec::for_tests().autodiff();
    let model = tiny(&dev);
    let anchor = snapshot(&model.head);
    assert!(
        quadratic_penalty(&model.head, &anchor, None)
            .is_some_and(|p| p.into_scalar::<f32>() == 0.0)
    );
    let mut moved = model.head.clone();
    moved.weight = with_value(&moved.weight.val(), 4, 0.5);
    moved.weight = Param::initialized(model.head.weight.id, moved.weight.val());
    let weights = anchor
        .iter()
        .map(|(k, v)| (*k, v.ones_like() * 3.0))
        .collect();
    let p = quadratic_penalty(&moved, &anchor, Some(&weights))
        .unwrap()
        .into_scalar::<f32>();
    assert!((p - 3.0 * 0.25).abs() < 1e-5, "{p}");
}
