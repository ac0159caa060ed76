//! Lifelong side-tuning (Zhang et al.): a new side network and head per
//! task on the frozen base; each task keeps its own model, untouched by the
//! tasks after it. The shared variant keeps none.

use crate::common::task_context;
use std::sync::Arc;

use burn::module::Module;
use burn::tensor::{Tensor, TensorData};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use reusebench_continual::methods::{MethodConfig, SideInit, SideTuning};
use reusebench_core::DeviceSpec;
use reusebench_core::backbone::BackboneConfig;
use reusebench_core::feature_cache::FeatureCache;
use reusebench_core::model::{Classifier, linear_head};
use reusebench_core::penalties::snapshot;
use reusebench_core::train::{CurveLog, OptimConfig};
use reusebench_data::{ImageSet, synthetic};

fn flat(model: &Classifier) -> Vec<f32> {
    let mut v: Vec<(String, Vec<f32>)> = snapshot(model)
        .into_iter()
        .map(|(id, t)| {
            (
                format!("{id:?}"),
                t.into_data().try_to_vec::<f32>().unwrap(),
            )
        })
        .collect();
    v.sort_by(|a, b| a.0.cmp(&b.0));
    v.into_iter().flat_map(|(_, x)| x).collect()
}

fn run(lifelong: bool) -> (Vec<Option<Classifier>>, Vec<Vec<f32>>) {
    run_with(lifelong, None, 0.1).0
}

/// The models per task, task 0's snapshots, and the base the run started from.
#[allow(clippy::type_complexity)]
fn run_with(
    lifelong: bool,
    init: Option<SideInit>,
    lr: f64,
) -> ((Vec<Option<Classifier>>, Vec<Vec<f32>>), Classifier) {
    let dev = DeviceSpec::for_tests().autodiff();
    let data = synthetic::generate(4, 6, 1, 0).unwrap();
    let tasks: Vec<Arc<ImageSet>> = (0..2)
        .map(|t| {
            Arc::new(
                data.train
                    .select_classes(&|l| (l / 2 == t as u32).then_some(l)),
            )
        })
        .collect();
    let cfg = BackboneConfig {
        width: 2,
        ..Default::default()
    };
    let mut rng = ChaCha8Rng::seed_from_u64(1);
    let mut model = Classifier::new(
        cfg.build(&mut rng, &dev),
        linear_head(&mut rng, cfg.feature_dim(), 4, &dev),
    );
    let start = model.clone();
    let method = MethodConfig::SideTuning(SideTuning {
        epochs: 1,
        optimizer: OptimConfig::sgd(lr).with_momentum(0.0),
        side_width: reusebench_core::bounded::PositiveInt::of(2),
        alpha: reusebench_core::bounded::Probability::of(0.5),
        alpha_final: None,
        learn_alpha: false,
        lifelong,
        init,
    });
    let mut learner = method.build();
    let (cache, curves) = (FeatureCache::default(), CurveLog::default());
    let mut snapshots_after = Vec::new();
    for t in 0..2 {
        let (history, classes) = (&tasks[..=t], [2 * t, 2 * t + 2, 4]);
        let norm = data.normalization;
        let ctx = task_context((t, 2), history, classes, norm, &dev, &cache, &curves);
        model = learner.learn_task(model, &ctx).unwrap();
        snapshots_after.push(learner.task_model(0).map(|m| flat(&m)).unwrap_or_default());
    }
    (
        (
            (0..2).map(|t| learner.task_model(t)).collect(),
            snapshots_after,
        ),
        start,
    )
}

/// Zhang et al.'s lifelong side-tuning starts every task's side network
/// as a copy of the base: at a vanishing learning rate its weights are the
/// base's (its batch-norm statistics train whatever the rate, on storage
/// of their own); a random side network's are not; the base never moves.
#[test]
fn lifelong_side_networks_start_as_the_base() {
    let dev = DeviceSpec::for_tests().autodiff();
    let x = Tensor::<4>::from_data(
        TensorData::new(vec![0.3f32; 2 * 3 * 32 * 32], [2, 3, 32, 32]),
        &dev,
    );
    let features = |r: &reusebench_core::backbone::Backbone| -> Vec<f32> {
        r.valid()
            .forward(x.clone())
            .into_data()
            .try_to_vec::<f32>()
            .unwrap()
    };
    let stem = |r: &reusebench_core::backbone::Backbone| -> Vec<f32> {
        r.as_resnet()
            .unwrap()
            .conv1
            .weight
            .val()
            .into_data()
            .try_to_vec::<f32>()
            .unwrap()
    };
    let gap = |a: &[f32], b: &[f32]| a.iter().zip(b).fold(0f32, |m, (p, q)| m.max((p - q).abs()));
    let ((models, _), start) = run_with(true, None, 1e-12);
    for m in models.iter().flatten() {
        let side = &m.side_tuned().unwrap().side;
        assert!(
            gap(&stem(&side.net), &stem(start.backbone())) < 1e-6,
            "a copy of the base"
        );
        assert_eq!(
            features(m.backbone()),
            features(start.backbone()),
            "the base as pretrained"
        );
    }
    let ((models, _), start) = run_with(true, Some(SideInit::Random), 1e-12);
    let side = &models[0].as_ref().unwrap().side_tuned().unwrap().side;
    assert!(
        gap(&stem(&side.net), &stem(start.backbone())) > 1e-3,
        "a random side network"
    );
}

#[test]
fn each_task_keeps_its_own_side_network_and_head() {
    let (models, task0_after) = run(true);
    let (m0, m1) = (models[0].as_ref().unwrap(), models[1].as_ref().unwrap());
    // Task 0's model is the same after task 1 was learned...
    assert_eq!(task0_after[0], task0_after[1]);
    // ...and not task 1's: another side network and head.
    let (side0, side1) = (m0.side_tuned().unwrap(), m1.side_tuned().unwrap());
    assert_ne!(flat_side(&side0.side), flat_side(&side1.side));
    assert_ne!(
        m0.head
            .weight
            .val()
            .into_data()
            .try_to_vec::<f32>()
            .unwrap(),
        m1.head
            .weight
            .val()
            .into_data()
            .try_to_vec::<f32>()
            .unwrap()
    );
    // Both on the same frozen base.
    assert_eq!(
        flat_resnet(m0.backbone()),
        flat_resnet(m1.backbone()),
        "the base stays as pretrained"
    );
}

#[test]
fn the_shared_variant_keeps_no_per_task_model() {
    let (models, _) = run(false);
    assert!(models.iter().all(Option::is_none));
}

fn flat_side(side: &reusebench_core::model::SideNet) -> Vec<f32> {
    side.proj
        .weight
        .val()
        .into_data()
        .try_to_vec::<f32>()
        .unwrap()
}

fn flat_resnet(r: &reusebench_core::backbone::Backbone) -> Vec<f32> {
    let c = Classifier::new(
        r.clone(),
        linear_head(
            &mut ChaCha8Rng::seed_from_u64(0),
            1,
            1,
            &DeviceSpec::for_tests(),
        ),
    );
    flat(&c)
}
