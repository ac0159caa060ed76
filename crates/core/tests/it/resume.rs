//! A training stage stopped after an epoch and run again from its
//! checkpoint ends with the same weights, bit for bit, as one that ran
//! through: the model, SGD's momentum (keyed by parameter ids that differ
//! between the two runs) and the epoch reached all come back. (Loading the
//! checkpoint without the optimizer's state fails this test.)

use std::sync::Arc;

use burn::tensor::{Device, Tensor};
use reusebench_core::model::Classifier;
use reusebench_core::resume::Checkpoints;
use reusebench_core::testing::{logged_stage, tiny_classifier};
use reusebench_core::train::{
    CurveLog, NoHooks, OptimConfig, Stage, StageStats, Step, TrainHooks, fit,
};
use reusebench_core::{CoreError, DeviceSpec, NoProgress};
use reusebench_data::synthetic;

/// Fails the stage at the first batch of `epoch` (a crash after the
/// checkpoint of the epoch before).
struct FailAt {
    epoch: usize,
    batches: usize,
    per_epoch: usize,
}

impl<M> TrainHooks<M> for FailAt {
    fn extra_loss(&mut self, _: &M, _: &Step) -> Result<Option<Tensor<1>>, CoreError> {
        self.batches += 1;
        if self.batches > self.epoch * self.per_epoch {
            return Err(CoreError::config("", "crash"));
        }
        Ok(None)
    }
}

fn weights(model: &Classifier) -> Vec<f32> {
    let mut v: Vec<_> = reusebench_core::params::snapshot(model)
        .into_values()
        .map(|t| t.into_data().try_to_vec::<f32>().unwrap())
        .collect();
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    v.concat()
}

/// Three epochs of SGD with momentum on a fresh tiny classifier (built
/// anew each call, so with parameter ids of its own), its curve in `log`.
fn train_three_epochs(
    log: &CurveLog,
    hooks: &mut dyn TrainHooks<Classifier>,
) -> Result<(Classifier, StageStats), CoreError> {
    let dev: Device = DeviceSpec::for_tests().autodiff();
    let data = synthetic::generate(3, 8, 1, 0).unwrap();
    let optim = OptimConfig::sgd(0.05).with_momentum(0.9);
    let stage = Stage {
        epochs: 3,
        ..logged_stage("resume", log, &optim, data.normalization, 3)
    };
    fit(
        tiny_classifier(4, 3, 0, &dev),
        &Arc::new(data.train),
        &stage,
        hooks,
        &dev,
        &NoProgress,
    )
}

#[test]
fn a_stage_resumed_from_its_checkpoint_ends_where_an_uninterrupted_one_does() {
    let log = CurveLog::default();
    let (through, _) = train_three_epochs(&log, &mut NoHooks).unwrap();
    let curve = log.take();

    let dir = tempfile::tempdir().unwrap();
    let crashed = CurveLog::default();
    crashed.set_checkpoints(Arc::new(Checkpoints::new(dir.path(), 1)));
    let mut fail = FailAt {
        epoch: 2,
        batches: 0,
        per_epoch: 24 / 4,
    };
    let err = train_three_epochs(&crashed, &mut fail);
    assert!(err.is_err(), "the stage should have crashed at epoch 3");
    assert!(dir.path().join("stage-0000/state.json").is_file());

    // A new process: the model is built again (new parameter ids).
    let resumed = CurveLog::default();
    resumed.set_checkpoints(Arc::new(Checkpoints::new(dir.path(), 1)));
    let (back, stats) = train_three_epochs(&resumed, &mut NoHooks).unwrap();
    assert_eq!(stats.epochs, 3);
    assert_eq!(
        weights(&back),
        weights(&through),
        "weights differ after resuming"
    );
    let strip = |rows: Vec<reusebench_core::MetricRow>| {
        rows.into_iter()
            .filter(|r| r.metric != "curve_seconds")
            .collect::<Vec<_>>()
    };
    assert_eq!(strip(resumed.take()), strip(curve), "the curve is whole");
}
