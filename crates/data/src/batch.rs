//! Seeded batching with background prefetch: a worker thread decodes,
//! augments and normalises the next batches while the model trains on the
//! current one.

use std::sync::Arc;
use std::sync::mpsc::{Receiver, sync_channel};
use std::thread::JoinHandle;

use rand::SeedableRng;
use rand::seq::SliceRandom;
use rand_chacha::ChaCha8Rng;

use crate::image_set::ImageSet;
use crate::transform::{Augment, Normalization, write_image};

/// One batch, normalised, NCHW `f32`.
#[derive(Debug, Clone)]
pub struct Batch {
    pub images: Vec<f32>,
    pub labels: Vec<u32>,
    /// Positions of the images in the set (replay buffers record them).
    pub indices: Vec<usize>,
    pub shape: [usize; 4],
}

/// How to walk a set once (an epoch).
#[derive(Debug, Clone, Copy)]
pub struct BatchPlan {
    pub batch_size: usize,
    /// Shuffle with this seed; `None` keeps the stored order.
    pub shuffle_seed: Option<u64>,
    pub augment: Augment,
    pub normalization: Normalization,
    /// Batches kept ready ahead of the consumer.
    pub prefetch: usize,
    /// Drop a last batch smaller than `batch_size` (training only: a batch
    /// of one breaks batch norm).
    pub drop_last: bool,
}

impl BatchPlan {
    /// Every image once, in the stored order, un-augmented, two batches
    /// kept ready: how inference walks a set.
    pub fn in_order(batch_size: usize, normalization: Normalization) -> Self {
        Self {
            batch_size,
            shuffle_seed: None,
            augment: Augment::NONE,
            normalization,
            prefetch: 2,
            drop_last: false,
        }
    }
}

/// Iterator over the batches of one epoch, produced by a background thread.
pub struct BatchIter {
    rx: Receiver<Batch>,
    worker: Option<JoinHandle<()>>,
    remaining: usize,
}

impl BatchIter {
    pub fn new(set: Arc<ImageSet>, plan: BatchPlan) -> Self {
        let mut order: Vec<usize> = (0..set.len()).collect();
        let mut rng = ChaCha8Rng::seed_from_u64(plan.shuffle_seed.unwrap_or(0));
        if plan.shuffle_seed.is_some() {
            order.shuffle(&mut rng);
        }
        let bs = plan.batch_size.max(1);
        let mut chunks: Vec<Vec<usize>> = order.chunks(bs).map(<[usize]>::to_vec).collect();
        if plan.drop_last && chunks.last().is_some_and(|c| c.len() < bs) && chunks.len() > 1 {
            chunks.pop();
        }
        let remaining = chunks.len();
        let (tx, rx) = sync_channel(plan.prefetch.max(1));
        // The augmentation stream is derived from the shuffle seed, so an
        // epoch is reproducible whatever the thread timing.
        let worker = std::thread::spawn(move || {
            let (c, h, w) = (set.channels, set.height, set.width);
            let n = set.image_len();
            for chunk in chunks {
                let mut images = vec![0f32; chunk.len() * n];
                let mut labels = Vec::with_capacity(chunk.len());
                for (k, &i) in chunk.iter().enumerate() {
                    write_image(
                        set.image(i),
                        c,
                        h,
                        w,
                        plan.augment,
                        &plan.normalization,
                        &mut rng,
                        &mut images[k * n..(k + 1) * n],
                    );
                    labels.push(set.labels[i]);
                }
                let batch = Batch {
                    shape: [chunk.len(), c, h, w],
                    images,
                    labels,
                    indices: chunk,
                };
                if tx.send(batch).is_err() {
                    return; // consumer dropped the iterator early
                }
            }
        });
        Self {
            rx,
            worker: Some(worker),
            remaining,
        }
    }

    pub fn len(&self) -> usize {
        self.remaining
    }

    pub fn is_empty(&self) -> bool {
        self.remaining == 0
    }
}

impl Iterator for BatchIter {
    type Item = Batch;

    fn next(&mut self) -> Option<Batch> {
        let batch = self.rx.recv().ok();
        if batch.is_some() {
            self.remaining -= 1;
        }
        batch
    }
}

impl Drop for BatchIter {
    fn drop(&mut self) {
        // Unblock the worker (its send fails once rx is gone), then join it.
        let (_, dummy) = sync_channel(1);
        drop(std::mem::replace(&mut self.rx, dummy));
        if let Some(w) = self.worker.take() {
            let _ = w.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(n: usize) -> Arc<ImageSet> {
        let mut s = ImageSet::empty(3, 4, 4);
        for i in 0..n {
            s.push(&[i as u8; 48], i as u32);
        }
        Arc::new(s)
    }

    fn plan(seed: Option<u64>) -> BatchPlan {
        BatchPlan {
            batch_size: 4,
            shuffle_seed: seed,
            augment: Augment::STANDARD,
            normalization: Normalization {
                mean: [0.0; 3],
                std: [1.0; 3],
            },
            prefetch: 2,
            drop_last: false,
        }
    }

    #[test]
    fn covers_every_sample_once_and_is_seeded() {
        let a: Vec<Batch> = BatchIter::new(set(10), plan(Some(3))).collect();
        let b: Vec<Batch> = BatchIter::new(set(10), plan(Some(3))).collect();
        assert_eq!(a.len(), 3);
        let mut labels: Vec<u32> = a.iter().flat_map(|b| b.labels.clone()).collect();
        assert_eq!(
            labels,
            b.iter().flat_map(|b| b.labels.clone()).collect::<Vec<_>>()
        );
        assert_eq!(
            a.iter().map(|b| b.images.clone()).collect::<Vec<_>>(),
            b.iter().map(|b| b.images.clone()).collect::<Vec<_>>()
        );
        assert_ne!(labels, (0..10).collect::<Vec<u32>>(), "shuffled");
        labels.sort();
        assert_eq!(labels, (0..10).collect::<Vec<u32>>());
        assert_eq!(a[2].shape, [2, 3, 4, 4]);
    }

    #[test]
    fn drop_last_and_early_drop() {
        let mut p = plan(None);
        p.drop_last = true;
        let it = BatchIter::new(set(10), p);
        assert_eq!(it.len(), 2);
        let mut it = BatchIter::new(set(100), plan(None));
        let first = it.next().unwrap();
        assert_eq!(first.labels, vec![0, 1, 2, 3]);
        drop(it); // must not hang with the worker blocked on a full channel
    }
}
