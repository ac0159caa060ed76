//! Evaluation as every protocol does it, in one place: a model's test
//! accuracy, its features through the run's feature cache, kNN accuracy
//! on them. Every call's time goes to a named phase (`evaluation`, `knn`,
//! or one the protocol names through [`Evaluator::timed`], such as
//! `train`), and [`Evaluator::phase_rows`] turns the phases into rows
//! (`phase_seconds` at coordinate `phase`), a timing metric that result
//! comparisons leave out.

use std::cell::RefCell;
use std::sync::Arc;
use std::time::Instant;

use burn::tensor::Device;
use reusebench_data::{ImageSet, Normalization};

use crate::feature_cache::FeatureCache;
use crate::features::{ModelKey, Rows, cached_features_keyed, head_logits, logits};
use crate::metrics::{Coords, KnnConfig, MetricRow, accuracy, knn_accuracy, names};
use crate::model::Classifier;
use crate::progress::PhaseTimes;

/// A cell's evaluations, with what they share: the device, the batch
/// size and normalisation of inference, the feature cache, the phase times.
pub struct Evaluator<'a> {
    pub device: &'a Device,
    pub cache: &'a FeatureCache,
    pub batch_size: usize,
    pub normalization: Normalization,
    times: RefCell<PhaseTimes>,
    /// Seconds spent in phases nested inside each running phase (a stack):
    /// a phase's own time leaves out its nested phases', so the phases add
    /// up to the wall time.
    nested: RefCell<Vec<f64>>,
}

impl<'a> Evaluator<'a> {
    pub fn new(
        device: &'a Device,
        cache: &'a FeatureCache,
        batch_size: usize,
        normalization: Normalization,
    ) -> Self {
        Self {
            device,
            cache,
            batch_size,
            normalization,
            times: RefCell::default(),
            nested: RefCell::default(),
        }
    }

    /// Runs `work`, adding its time to `phase` (less the time of phases
    /// timed inside it).
    pub fn timed<T>(&self, phase: &'static str, work: impl FnOnce() -> T) -> T {
        self.nested.borrow_mut().push(0.0);
        let started = Instant::now();
        let out = work();
        let inner = self.nested.borrow_mut().pop().unwrap_or(0.0);
        self.add_seconds(phase, started.elapsed().as_secs_f64(), inner);
        out
    }

    /// Adds the time since `started` to `phase`.
    pub fn add_since(&self, phase: &'static str, started: Instant) {
        self.add_seconds(phase, started.elapsed().as_secs_f64(), 0.0);
    }

    fn add_seconds(&self, phase: &'static str, total: f64, inner: f64) {
        self.times.borrow_mut().add_seconds(phase, total - inner);
        if let Some(parent) = self.nested.borrow_mut().last_mut() {
            *parent += total;
        }
    }

    /// Test accuracy (%) of `model` on `set` (phase `evaluation`).
    pub fn accuracy(&self, model: &Classifier, set: &Arc<ImageSet>) -> f64 {
        self.timed("evaluation", || {
            let out = logits(model, set, self.batch_size, self.normalization, self.device);
            accuracy(&out.values, out.dim, &set.labels)
        })
    }

    /// Test accuracy (%) of `model` on `set` from the features in the
    /// cache (phase `evaluation`): a model whose backbone did not move
    /// since the last call reuses that call's features.
    pub fn cached_accuracy(&self, model: &Classifier, set: &Arc<ImageSet>) -> f64 {
        let feats = self.features(model, &ModelKey::of(model), set);
        self.timed("evaluation", || {
            let out = head_logits(&model.head, &feats, self.device);
            accuracy(&out.values, out.dim, &set.labels)
        })
    }

    /// The class `model` predicts for every image of `set` (argmax of its
    /// logits), from the features in the cache as
    /// [`Evaluator::cached_accuracy`] (phase `evaluation`).
    pub fn cached_predictions(&self, model: &Classifier, set: &Arc<ImageSet>) -> Vec<u32> {
        let feats = self.features(model, &ModelKey::of(model), set);
        self.timed("evaluation", || {
            let out = head_logits(&model.head, &feats, self.device);
            out.values
                .chunks(out.dim)
                .map(|row| {
                    let mut best = 0;
                    for (c, &v) in row.iter().enumerate() {
                        if v > row[best] {
                            best = c;
                        }
                    }
                    best as u32
                })
                .collect()
        })
    }

    /// The features `model`'s head sees on `set`, through the cache (phase
    /// `evaluation`); `key` is the model's [`ModelKey`].
    pub fn features(&self, model: &Classifier, key: &ModelKey, set: &Arc<ImageSet>) -> Arc<Rows> {
        self.timed("evaluation", || {
            let (bs, norm) = (self.batch_size, self.normalization);
            cached_features_keyed(self.cache, model, key, set, bs, norm, self.device)
        })
    }

    /// kNN accuracy (%) of `queries` against the bank of `model`'s
    /// features of `train` (phase `knn`, the bank's features included).
    pub fn knn(
        &self,
        model: &Classifier,
        key: &ModelKey,
        train: &Arc<ImageSet>,
        queries: &Rows,
        query_labels: &[u32],
        config: &KnnConfig,
    ) -> f64 {
        self.timed("knn", || {
            let (bs, norm) = (self.batch_size, self.normalization);
            let bank = cached_features_keyed(self.cache, model, key, train, bs, norm, self.device);
            knn_accuracy(&bank, &train.labels, queries, query_labels, config)
        })
    }

    /// Seconds per phase so far, one row each.
    pub fn phase_rows(&self) -> Vec<MetricRow> {
        self.times
            .borrow()
            .phases()
            .map(|(phase, seconds)| {
                MetricRow::at(
                    names::PHASE_SECONDS,
                    seconds,
                    Coords::new().with(names::PHASE, phase),
                )
            })
            .collect()
    }

    /// `time: train 12.3 s (80 %), …`, for the progress log.
    pub fn summary(&self) -> String {
        self.times.borrow().summary()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::DeviceSpec;

    #[test]
    fn nested_phases_are_not_counted_twice() {
        let device = DeviceSpec::for_tests();
        let cache = FeatureCache::default();
        let ev = Evaluator::new(&device, &cache, 8, Normalization::IMAGENET);
        let nap = || std::thread::sleep(std::time::Duration::from_millis(20));
        let wall = Instant::now();
        ev.timed("outer", || {
            nap();
            ev.timed("inner", nap);
        });
        let wall = wall.elapsed().as_secs_f64();
        let rows = ev.phase_rows();
        let seconds = |p: &str| {
            let at = |r: &&MetricRow| r.coords.get(names::PHASE).map(|c| c.to_string());
            rows.iter()
                .find(|r| at(r).as_deref() == Some(p))
                .unwrap()
                .value
        };
        assert_eq!(rows.len(), 2);
        assert!(rows.iter().all(|r| r.metric == names::PHASE_SECONDS));
        // Each phase slept 20 ms of its own; together they are the wall
        // time, not more (the inner phase is not counted in the outer).
        assert!(seconds("inner") >= 0.02 && seconds("outer") >= 0.02);
        assert!(seconds("inner") + seconds("outer") <= wall + 1e-9);
    }
}
