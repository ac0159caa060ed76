//! Class-incremental training that touches only some head columns: the
//! linear probe on the new classes alone (Mammoth's LwF warm-up), and the
//! cross-entropy over the classes seen so far (Mammoth's LwF).

use crate::common::{first_epoch_loss, task_context};
use std::sync::Arc;

use burn::tensor::Tensor;
use burn::tensor::loss::cross_entropy_with_logits;
use reusebench_continual::methods::{LpStage, MethodConfig, TaskContext};
use reusebench_core::feature_cache::FeatureCache;
use reusebench_core::model::Classifier;
use reusebench_core::testing::{logged_stage, tiny_classifier};
use reusebench_core::train::{CurveLog, OptimConfig, TrainHooks, fit, one_hot};
use reusebench_core::{DeviceSpec, NoProgress};
use reusebench_data::{ImageSet, synthetic};

fn optim() -> OptimConfig {
    OptimConfig::sgd(0.5).with_momentum(0.0)
}

fn model(classes: usize, dev: &burn::tensor::Device) -> Classifier {
    tiny_classifier(2, classes, 4, dev)
}

fn values(t: Tensor<2>) -> Vec<Vec<f32>> {
    let [rows, cols] = t.dims();
    let v: Vec<f32> = t.into_data().try_to_vec::<f32>().unwrap();
    (0..rows)
        .map(|r| v[r * cols..(r + 1) * cols].to_vec())
        .collect()
}

/// The head's weight rows and its bias.
fn head_values(model: &Classifier) -> (Vec<Vec<f32>>, Vec<f32>) {
    let bias = model.head.bias.as_ref().unwrap().val();
    let bias = bias.into_data().try_to_vec::<f32>().unwrap();
    (values(model.head.weight.val()), bias)
}

/// Which of a 6-class head's columns (weights or bias) `learn` moves on
/// task 1 of a sequence: classes 2 and 3 are new, 0-1 old, 4-5 future.
fn columns_moved(learn: &dyn Fn(Classifier, &TaskContext) -> Classifier) -> Vec<bool> {
    let dev = DeviceSpec::for_tests().autodiff();
    let data = synthetic::generate(6, 4, 1, 0).unwrap();
    let train = Arc::new(
        data.train
            .select_classes(&|l| (2..4).contains(&l).then_some(l)),
    );
    let history: Vec<Arc<ImageSet>> = vec![Arc::clone(&train)];
    let (cache, curves) = (FeatureCache::default(), CurveLog::default());
    let norm = data.normalization;
    let ctx = task_context((1, 3), &history, [2, 4, 6], norm, &dev, &cache, &curves);
    let before = model(6, &dev);
    let (w0, b0) = head_values(&before);
    let (w1, b1) = head_values(&learn(before, &ctx));
    (0..6)
        .map(|c| w0.iter().zip(&w1).any(|(r0, r1)| r0[c] != r1[c]) || b0[c] != b1[c])
        .collect()
}

#[test]
fn the_probe_on_new_classes_leaves_every_other_column_alone() {
    let lp = Some(LpStage {
        epochs: 3,
        optimizer: optim(),
        new_classes_only: true,
    });
    let moved = columns_moved(&|m, ctx| LpStage::run(&lp, m, ctx).unwrap());
    assert_eq!(moved, [false, false, true, true, false, false]);
}

/// Asks the loop for the cross-entropy over the first two columns only.
struct SeenTwo;
impl TrainHooks<Classifier> for SeenTwo {
    fn loss_columns(&self) -> Option<usize> {
        Some(2)
    }
}

#[test]
fn the_loss_can_be_restricted_to_the_classes_seen_so_far() {
    let dev = DeviceSpec::for_tests().autodiff();
    let data = synthetic::generate(4, 2, 1, 0).unwrap();
    let set = Arc::new(data.train.select_classes(&|l| (l < 2).then_some(l)));
    let m = model(4, &dev);
    let (optim, log) = (optim(), CurveLog::default());
    let stage = logged_stage("seen", &log, &optim, data.normalization, 4);
    let (x, labels) = reusebench_core::testing::first_batch(&set, 4, data.normalization, &dev);
    let logits = m.clone().forward(x).narrow(1, 0, 2);
    let want =
        cross_entropy_with_logits(logits, one_hot(&labels, 2, &dev)).into_scalar::<f32>() as f64;
    fit(m, &set, &stage, &mut SeenTwo, &dev, &NoProgress).unwrap();
    let got = first_epoch_loss(&log);
    assert!(
        (got - want).abs() < 1e-4 * want.abs().max(1.0),
        "loss over seen columns {got} vs {want}"
    );
}

/// LP-FT's probe in class-IL, with fine-tuning off so that only the probe
/// acts: by default only the new classes' columns move; with
/// `new_classes_only: false` (the old behaviour) the old ones move too.
#[test]
fn lp_ft_probes_only_the_new_classes_columns_unless_told_otherwise() {
    let moved = |json: &str| {
        let method: MethodConfig = serde_json::from_str(json).unwrap();
        columns_moved(&|m, ctx| method.build().learn_task(m, ctx).unwrap())
    };
    let base = r#"{"name": "lp-ft", "lp_epochs": 3, "ft_epochs": 0,
        "lp_optimizer": {"lr": 0.5, "momentum": 0}, "ft_optimizer": {"lr": 0.5}"#;
    assert_eq!(
        moved(&format!("{base} }}")),
        vec![false, false, true, true, false, false],
        "default: the new classes' columns only"
    );
    let whole = moved(&format!(r#"{base}, "new_classes_only": false }}"#));
    assert!(
        whole[0] && whole[1] && whole[2] && whole[3],
        "whole head: {whole:?}"
    );
}
