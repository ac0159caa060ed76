//! Features of a frozen model on an un-augmented image set, computed once
//! and reused. PyTorch scripts recompute them on every pass; here every
//! consumer that needs a frozen network's features — LP-FT's probe, kNN
//! banks and queries, the adaptation probes, side-tuning's frozen base, and
//! the protocols to come that evaluate one deployed model over many rounds —
//! asks the cache.
//!
//! Keys are a fingerprint of the model's values (every parameter and
//! batch-norm statistic, so any change to the weights is a new key) and the
//! image set's identity (the cache keeps the `Arc` alive, so its address
//! cannot be reused) with the normalisation. Entries are bounded by bytes;
//! the oldest go first.

use std::collections::VecDeque;
use std::collections::hash_map::DefaultHasher;
use std::hash::{Hash, Hasher};
use std::sync::{Arc, Mutex};

use burn::module::{Module, ModuleVisitor, Param};
use burn::tensor::Tensor;
use reusebench_data::{ImageSet, Normalization};

use crate::rows::Rows;

struct Fingerprint(DefaultHasher);

impl ModuleVisitor for Fingerprint {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
        let data = param.val().into_data();
        data.shape().hash(&mut self.0);
        data.as_bytes().hash(&mut self.0);
    }
}

/// A hash of every value of `module` (parameters and running statistics).
pub fn fingerprint<M: Module>(module: &M) -> u64 {
    let mut v = Fingerprint(DefaultHasher::new());
    module.visit(&mut v);
    v.0.finish()
}

#[derive(Clone, Copy, PartialEq, Eq, Hash)]
struct Key {
    model: u64,
    set: usize,
    normalization: [u32; 6],
}

struct Entry {
    key: Key,
    _set: Arc<ImageSet>,
    rows: Arc<Rows>,
}

/// Hit and miss counts, for logs and tests.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CacheStats {
    pub hits: usize,
    pub misses: usize,
}

pub struct FeatureCache {
    entries: Mutex<VecDeque<Entry>>,
    stats: Mutex<CacheStats>,
    max_bytes: usize,
}

impl Default for FeatureCache {
    /// 2 GiB: the features of every Seq-TinyImageNet image at 512 dims
    /// (110k x 2 KiB) with room to spare.
    fn default() -> Self {
        Self::with_capacity(2 << 30)
    }
}

impl FeatureCache {
    pub fn with_capacity(max_bytes: usize) -> Self {
        Self {
            entries: Mutex::new(VecDeque::new()),
            stats: Mutex::new(CacheStats::default()),
            max_bytes,
        }
    }

    pub fn stats(&self) -> CacheStats {
        *self.stats.lock().expect("cache stats")
    }

    /// The rows for (`model`, `set`, `normalization`), from the cache or
    /// from `compute` (then stored).
    pub fn get_or_compute(
        &self,
        model: u64,
        set: &Arc<ImageSet>,
        normalization: Normalization,
        compute: impl FnOnce() -> Rows,
    ) -> Arc<Rows> {
        let mut n = [0u32; 6];
        for c in 0..3 {
            n[c] = normalization.mean[c].to_bits();
            n[3 + c] = normalization.std[c].to_bits();
        }
        let key = Key {
            model,
            set: Arc::as_ptr(set) as usize,
            normalization: n,
        };
        if let Some(e) = self
            .entries
            .lock()
            .expect("cache")
            .iter()
            .find(|e| e.key == key)
        {
            self.stats.lock().expect("cache stats").hits += 1;
            return Arc::clone(&e.rows);
        }
        self.stats.lock().expect("cache stats").misses += 1;
        let rows = Arc::new(compute());
        let size = rows.values.len() * 4;
        if size <= self.max_bytes {
            let mut entries = self.entries.lock().expect("cache");
            let mut used: usize = entries.iter().map(|e| e.rows.values.len() * 4).sum();
            while used + size > self.max_bytes {
                let Some(old) = entries.pop_front() else {
                    break;
                };
                used -= old.rows.values.len() * 4;
            }
            entries.push_back(Entry {
                key,
                _set: Arc::clone(set),
                rows: Arc::clone(&rows),
            });
        }
        rows
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(n: usize) -> Arc<ImageSet> {
        let mut s = ImageSet::empty(1, 1, 1);
        for i in 0..n {
            s.push(&[i as u8], 0);
        }
        Arc::new(s)
    }

    const NORM: Normalization = Normalization {
        mean: [0.0; 3],
        std: [1.0; 3],
    };

    #[test]
    fn computes_once_per_model_and_set_and_evicts_oldest() {
        let cache = FeatureCache::with_capacity(3 * 4 * 4); // three rows of 4 floats
        let a = set(1);
        let b = set(1);
        let computed = std::cell::Cell::new(0);
        let get = |model, s: &Arc<ImageSet>| {
            cache.get_or_compute(model, s, NORM, || {
                computed.set(computed.get() + 1);
                Rows {
                    values: vec![model as f32; 4],
                    dim: 4,
                }
            })
        };
        assert_eq!(get(1, &a).values[0], 1.0);
        assert_eq!(get(1, &a).values[0], 1.0);
        get(2, &a); // another model
        get(1, &b); // another set with the same content: its own entry
        assert_eq!(computed.get(), 3);
        get(3, &a); // evicts (1, a)
        get(1, &a);
        assert_eq!(computed.get(), 5);
        assert_eq!(cache.stats(), CacheStats { hits: 1, misses: 5 });
    }

    #[test]
    fn fingerprint_changes_with_any_weight() {
        use burn::nn::LinearConfig;
        let dev = burn::tensor::Device::flex();
        let l = LinearConfig::new(3, 2).init(&dev);
        let f = fingerprint(&l);
        assert_eq!(f, fingerprint(&l.clone()));
        let mut moved = l.clone();
        let w = moved.weight.val();
        moved.weight = Param::from_tensor(w.clone() + w.ones_like() * 1e-6);
        assert_ne!(f, fingerprint(&moved));
    }
}
