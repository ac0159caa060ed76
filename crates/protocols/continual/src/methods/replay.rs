//! A reservoir replay buffer (Vitter's algorithm R, as Mammoth's ER and
//! DER use it): after n examples have been offered, each is in the buffer
//! with probability capacity / n. Entries keep the raw image, the label and
//! optionally the logits the model gave it when it was stored (DER).

use burn::tensor::{Device, Tensor, TensorData};
use rand::Rng;
use rand::seq::index::sample;
use rand_chacha::ChaCha8Rng;
use reusebench_data::{Augment, Normalization, write_image};

#[derive(Debug, Clone)]
pub struct ReplayBuffer {
    pub capacity: usize,
    /// Examples offered so far.
    pub seen: u64,
    pub images: Vec<Vec<u8>>,
    pub labels: Vec<u32>,
    pub logits: Vec<Vec<f32>>,
    /// CHW shape of the stored images.
    pub shape: [usize; 3],
    /// With the experience-balanced update: how many entries each task
    /// holds, in task order (entries are stored task by task, each task's
    /// in a random order, so that shrinking a task keeps a random subset).
    pub groups: Vec<usize>,
}

/// When and how the buffer takes examples.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum BufferUpdate {
    /// Reservoir sampling over every training example as it is seen,
    /// during training (Mammoth's ER and DER): while task t trains, its own
    /// examples enter the buffer and are replayed with the old ones.
    #[default]
    Reservoir,
    /// After each task, the buffer is split equally among the tasks so far
    /// (the first ones get the remainder): a random subset of the new
    /// task's examples fills its share, the older tasks keep a random
    /// subset of theirs (Avalanche's `Replay`, `ExperienceBalancedBuffer`
    /// with `adaptive_size`). While a task trains, only earlier tasks are
    /// replayed.
    ExperienceBalanced,
}

/// A replayed minibatch on the training device.
pub struct ReplayBatch {
    pub images: Tensor<4>,
    pub labels: Vec<u32>,
    /// Stored logits (`[n, classes]`) when the buffer keeps them.
    pub logits: Option<Tensor<2>>,
}

impl ReplayBuffer {
    pub fn new(capacity: usize, shape: [usize; 3]) -> Self {
        Self {
            capacity,
            seen: 0,
            images: Vec::new(),
            labels: Vec::new(),
            logits: Vec::new(),
            shape,
            groups: Vec::new(),
        }
    }

    /// The experience-balanced update after a task (see
    /// [`BufferUpdate::ExperienceBalanced`]): `capacity / tasks` entries per
    /// task, the remainder to the first tasks; the new task's share is a
    /// random subset of `task_set` (without logits: ER keeps none).
    pub fn add_task_balanced(
        &mut self,
        rng: &mut ChaCha8Rng,
        task_set: &reusebench_data::ImageSet,
    ) {
        let tasks = self.groups.len() + 1;
        let shares: Vec<usize> = (0..tasks)
            .map(|g| self.capacity / tasks + usize::from(g < self.capacity % tasks))
            .collect();
        let (mut images, mut labels) = (Vec::new(), Vec::new());
        let mut start = 0;
        for g in 0..self.groups.len() {
            let held = self.groups[g];
            let keep = held.min(shares[g]);
            images.extend_from_slice(&self.images[start..start + keep]);
            labels.extend_from_slice(&self.labels[start..start + keep]);
            start += held;
            self.groups[g] = keep;
        }
        let new = shares[tasks - 1].min(task_set.len());
        for i in sample(rng, task_set.len(), new) {
            images.push(task_set.image(i).to_vec());
            labels.push(task_set.labels[i]);
        }
        self.groups.push(new);
        self.seen += task_set.len() as u64;
        self.images = images;
        self.labels = labels;
    }

    pub fn len(&self) -> usize {
        self.labels.len()
    }

    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }

    /// Offers one example; returns the slot it went to, if any.
    pub fn offer(
        &mut self,
        rng: &mut ChaCha8Rng,
        image: &[u8],
        label: u32,
        logits: Option<&[f32]>,
    ) -> Option<usize> {
        self.seen += 1;
        let slot = if self.len() < self.capacity {
            self.images.push(Vec::new());
            self.labels.push(0);
            if logits.is_some() {
                self.logits.push(Vec::new());
            }
            self.len() - 1
        } else {
            let j = rng.random_range(0..self.seen) as usize;
            if j >= self.capacity {
                return None;
            }
            j
        };
        self.images[slot] = image.to_vec();
        self.labels[slot] = label;
        if let Some(l) = logits {
            self.logits[slot] = l.to_vec();
        }
        Some(slot)
    }

    /// Up to `n` distinct entries, uniformly.
    pub fn sample(&self, rng: &mut ChaCha8Rng, n: usize) -> Vec<usize> {
        let n = n.min(self.len());
        sample(rng, self.len(), n).into_vec()
    }

    /// The entries `picked`, augmented and normalised like training batches.
    pub fn batch(
        &self,
        picked: &[usize],
        augment: Augment,
        normalization: &Normalization,
        rng: &mut ChaCha8Rng,
        device: &Device,
    ) -> ReplayBatch {
        let [c, h, w] = self.shape;
        let n = c * h * w;
        let mut values = vec![0f32; picked.len() * n];
        for (k, &i) in picked.iter().enumerate() {
            write_image(
                &self.images[i],
                c,
                h,
                w,
                augment,
                normalization,
                rng,
                &mut values[k * n..(k + 1) * n],
            );
        }
        let images = Tensor::from_data(TensorData::new(values, [picked.len(), c, h, w]), device);
        let labels = picked.iter().map(|&i| self.labels[i]).collect();
        let logits = (!self.logits.is_empty()).then(|| {
            let dim = self.logits[0].len();
            let flat: Vec<f32> = picked
                .iter()
                .flat_map(|&i| self.logits[i].iter().copied())
                .collect();
            Tensor::from_data(TensorData::new(flat, [picked.len(), dim]), device)
        });
        ReplayBatch {
            images,
            labels,
            logits,
        }
    }
}

/// A buffer and its random stream as a checkpoint keeps them: this
/// header as JSON, then every image's bytes in entry order.
#[derive(serde::Serialize, serde::Deserialize)]
struct SavedBuffer {
    capacity: usize,
    seen: u64,
    labels: Vec<u32>,
    logits: Vec<Vec<f32>>,
    shape: [usize; 3],
    groups: Vec<usize>,
    image_bytes: Vec<usize>,
    rng: reusebench_core::resume::RngState,
}

impl ReplayBuffer {
    /// The buffer and `rng` as bytes ([`ReplayBuffer::restore`] reads them).
    pub fn save(&self, rng: &ChaCha8Rng) -> Vec<u8> {
        let header = SavedBuffer {
            capacity: self.capacity,
            seen: self.seen,
            labels: self.labels.clone(),
            logits: self.logits.clone(),
            shape: self.shape,
            groups: self.groups.clone(),
            image_bytes: self.images.iter().map(Vec::len).collect(),
            rng: reusebench_core::resume::RngState::of(rng),
        };
        let json = serde_json::to_vec(&header).expect("a buffer serialises");
        let mut out = (json.len() as u64).to_le_bytes().to_vec();
        out.extend_from_slice(&json);
        for image in &self.images {
            out.extend_from_slice(image);
        }
        out
    }

    /// A buffer and its stream from [`ReplayBuffer::save`]'s bytes.
    pub fn restore(bytes: &[u8]) -> Result<(ReplayBuffer, ChaCha8Rng), reusebench_core::CoreError> {
        let bad = |m: &str| {
            reusebench_core::CoreError::config("", format!("replay buffer in a checkpoint: {m}"))
        };
        let len = bytes
            .get(..8)
            .map(|b| u64::from_le_bytes(b.try_into().expect("8 bytes")) as usize)
            .ok_or_else(|| bad("truncated"))?;
        let json = bytes.get(8..8 + len).ok_or_else(|| bad("truncated"))?;
        let header: SavedBuffer = serde_json::from_slice(json).map_err(|e| bad(&e.to_string()))?;
        let mut rest = &bytes[8 + len..];
        let mut images = Vec::with_capacity(header.image_bytes.len());
        for &n in &header.image_bytes {
            let (image, tail) = rest.split_at_checked(n).ok_or_else(|| bad("truncated"))?;
            images.push(image.to_vec());
            rest = tail;
        }
        let rng = header.rng.restore()?;
        Ok((
            ReplayBuffer {
                capacity: header.capacity,
                seen: header.seen,
                images,
                labels: header.labels,
                logits: header.logits,
                shape: header.shape,
                groups: header.groups,
            },
            rng,
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    /// A checkpoint keeps the buffer and its stream: the restored pair
    /// takes the same next examples and samples the same batches.
    #[test]
    fn a_saved_buffer_and_stream_continue_as_the_originals() {
        let mut rng = ChaCha8Rng::seed_from_u64(3);
        let mut buffer = ReplayBuffer::new(5, [1, 2, 2]);
        for i in 0..12u8 {
            buffer.offer(&mut rng, &[i; 4], u32::from(i), Some(&[f32::from(i), 0.5]));
        }
        let (mut copy, mut copy_rng) = ReplayBuffer::restore(&buffer.save(&rng)).unwrap();
        assert_eq!(
            (copy.seen, &copy.images, &copy.labels, &copy.logits),
            (buffer.seen, &buffer.images, &buffer.labels, &buffer.logits)
        );
        for i in 12..30u8 {
            let a = buffer.offer(&mut rng, &[i; 4], u32::from(i), Some(&[0.0, 1.0]));
            let b = copy.offer(&mut copy_rng, &[i; 4], u32::from(i), Some(&[0.0, 1.0]));
            assert_eq!(a, b);
        }
        assert_eq!(buffer.sample(&mut rng, 3), copy.sample(&mut copy_rng, 3));
        assert_eq!(buffer.labels, copy.labels);
        assert!(ReplayBuffer::restore(&buffer.save(&rng)[..20]).is_err());
    }

    /// Every position of a stream of 100 ends up in a 10-slot buffer with
    /// probability 1/10: over 4000 seeded streams, inclusion counts pass a
    /// chi-square test, and early and late halves are kept equally often.
    #[test]
    fn reservoir_keeps_a_uniform_sample() {
        let (stream, capacity, trials) = (100usize, 10usize, 4000usize);
        let mut counts = vec![0usize; stream];
        let mut rng = ChaCha8Rng::seed_from_u64(7);
        for _ in 0..trials {
            let mut buf = ReplayBuffer::new(capacity, [1, 1, 1]);
            for i in 0..stream {
                buf.offer(&mut rng, &[i as u8], i as u32, None);
            }
            assert_eq!(buf.len(), capacity);
            for &l in &buf.labels {
                counts[l as usize] += 1;
            }
        }
        let expected = (trials * capacity) as f64 / stream as f64; // 400
        let chi2: f64 = counts
            .iter()
            .map(|&c| (c as f64 - expected).powi(2) / expected)
            .sum();
        // 99 degrees of freedom: the 99.9th percentile is 148.2.
        assert!(chi2 < 148.2, "chi-square {chi2}, counts {counts:?}");
        let early: usize = counts[..50].iter().sum();
        let late: usize = counts[50..].iter().sum();
        let diff = (early as f64 - late as f64).abs() / (trials * capacity) as f64;
        assert!(diff < 0.03, "early {early} vs late {late}");
    }

    /// The experience-balanced update: after task t the buffer holds
    /// capacity / t entries of every task so far (the remainder to the
    /// first), each a subset of that task's examples, and an older task's
    /// entries are a subset of what it held before.
    #[test]
    fn experience_balanced_update_splits_the_buffer_among_tasks() {
        use reusebench_data::ImageSet;
        let task = |t: u32, n: usize| {
            let mut s = ImageSet::empty(1, 1, 1);
            for i in 0..n {
                s.push(&[(t * 50) as u8 + i as u8], t);
            }
            s
        };
        let mut rng = ChaCha8Rng::seed_from_u64(3);
        let mut buf = ReplayBuffer::new(10, [1, 1, 1]);
        buf.add_task_balanced(&mut rng, &task(0, 30));
        assert_eq!((buf.len(), buf.groups.clone()), (10, vec![10]));
        assert!(buf.labels.iter().all(|&l| l == 0));
        let first: Vec<Vec<u8>> = buf.images.clone();
        buf.add_task_balanced(&mut rng, &task(1, 30));
        buf.add_task_balanced(&mut rng, &task(2, 30));
        // 10 over 3 tasks: 4, 3, 3.
        assert_eq!(buf.groups, vec![4, 3, 3]);
        let count = |t| buf.labels.iter().filter(|&&l| l == t).count();
        assert_eq!((count(0), count(1), count(2)), (4, 3, 3));
        // Task 0 kept a subset of its first 10; no entry twice.
        assert!(buf.images[..4].iter().all(|im| first.contains(im)));
        let mut all = buf.images.clone();
        all.sort();
        all.dedup();
        assert_eq!(all.len(), 10);
        // A task smaller than its share gives all it has.
        let mut small = ReplayBuffer::new(10, [1, 1, 1]);
        small.add_task_balanced(&mut rng, &task(0, 3));
        assert_eq!(small.groups, vec![3]);
    }

    #[test]
    fn samples_are_distinct_and_carry_logits() {
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        let mut buf = ReplayBuffer::new(5, [1, 2, 2]);
        for i in 0..3u8 {
            buf.offer(&mut rng, &[i; 4], i as u32, Some(&[i as f32, 1.0]));
        }
        let mut picked = buf.sample(&mut rng, 10);
        picked.sort();
        assert_eq!(picked, vec![0, 1, 2]);
        let norm = Normalization {
            mean: [0.0; 3],
            std: [1.0 / 255.0; 3],
        };
        let b = buf.batch(&[2, 0], Augment::NONE, &norm, &mut rng, &Device::flex());
        assert_eq!(b.labels, vec![2, 0]);
        let logits = b.logits.unwrap().into_data().try_into_vec::<f32>().unwrap();
        assert_eq!(logits, vec![2.0, 1.0, 0.0, 1.0]);
        let images = b.images.into_data().try_into_vec::<f32>().unwrap();
        assert_eq!(images, vec![2.0, 2.0, 2.0, 2.0, 0.0, 0.0, 0.0, 0.0]);
    }
}

/// The replay terms added to every batch once the buffer holds anything.
#[derive(Debug, Clone, Copy)]
pub enum ReplayLoss {
    /// ER: a replayed minibatch joins the batch; one mean cross-entropy
    /// over both (Mammoth's `er.py`).
    Er,
    /// DER++: α·MSE between the model's logits and the stored ones on one
    /// replayed minibatch, plus β·cross-entropy on another; each minibatch
    /// through a forward pass of its own (`separate`, Mammoth's `derpp.py`)
    /// or appended to the batch's pass (`joint`).
    DerPlusPlus {
        alpha: f64,
        beta: f64,
        passes: DerPasses,
    },
}

/// How DER++'s two replayed minibatches reach the model.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum DerPasses {
    /// Three forward passes per step (batch, logit minibatch, label
    /// minibatch), each normalised by its own batch statistics and each
    /// updating batch norm's running statistics, as Mammoth runs them.
    #[default]
    Separate,
    /// One pass over the batch with both minibatches appended (this
    /// project's behaviour before it followed Mammoth).
    Joint,
}

/// What was replayed this step, kept until its logits come back.
struct Pending {
    /// Rows of the first replayed minibatch.
    first: usize,
    labels: Vec<u32>,
    stored_logits: Option<Tensor<2>>,
    /// DER++ with separate passes: the two minibatches' images, which the
    /// loss passes through the model itself.
    separate: Option<(Tensor<4>, Tensor<4>)>,
}

/// Replays from and fills `buffer` during one task's training. The
/// replayed minibatches are appended to the current batch (one forward
/// pass, so batch norm sees old and new images together, as Mammoth's ER
/// does by concatenating).
pub struct ReplayHook<'a> {
    pub buffer: &'a mut ReplayBuffer,
    pub task_set: &'a reusebench_data::ImageSet,
    pub rng: &'a mut ChaCha8Rng,
    pub batch_size: usize,
    pub loss: ReplayLoss,
    /// Offer every training example to the reservoir after its step
    /// (`false` with the experience-balanced update, which fills the buffer
    /// after the task).
    pub fill_during_training: bool,
    pending: Option<Pending>,
}

impl<'a> ReplayHook<'a> {
    pub fn new(
        buffer: &'a mut ReplayBuffer,
        task_set: &'a reusebench_data::ImageSet,
        rng: &'a mut ChaCha8Rng,
        batch_size: usize,
        loss: ReplayLoss,
    ) -> Self {
        Self {
            buffer,
            task_set,
            rng,
            batch_size,
            loss,
            fill_during_training: true,
            pending: None,
        }
    }

    fn replay(&mut self, stage: &reusebench_core::train::Stage, device: &Device) -> ReplayBatch {
        let picked = self.buffer.sample(self.rng, self.batch_size);
        self.buffer.batch(
            &picked,
            stage.augment,
            &stage.normalization,
            self.rng,
            device,
        )
    }
}

impl<M: reusebench_core::model::TrainModel> reusebench_core::train::TrainHooks<M>
    for ReplayHook<'_>
{
    /// ER's replayed rows join the batch's cross-entropy (one mean over
    /// current + replayed, as Mammoth's `er.py`); DER++ adds its own terms.
    fn extra_labels(&self) -> Option<&[u32]> {
        match (self.loss, &self.pending) {
            (ReplayLoss::Er, Some(p)) => Some(&p.labels),
            _ => None,
        }
    }

    fn extra_batch(
        &mut self,
        stage: &reusebench_core::train::Stage,
        device: &Device,
    ) -> Option<Tensor<4>> {
        self.pending = None;
        if self.buffer.is_empty() {
            return None;
        }
        let first = self.replay(stage, device);
        let rows = first.labels.len();
        match self.loss {
            ReplayLoss::Er => {
                self.pending = Some(Pending {
                    first: rows,
                    labels: first.labels,
                    stored_logits: None,
                    separate: None,
                });
                Some(first.images)
            }
            ReplayLoss::DerPlusPlus { passes, .. } => {
                let second = self.replay(stage, device);
                let (appended, separate) = match passes {
                    DerPasses::Joint => (
                        Some(Tensor::cat(vec![first.images, second.images], 0)),
                        None,
                    ),
                    DerPasses::Separate => (None, Some((first.images, second.images))),
                };
                self.pending = Some(Pending {
                    first: rows,
                    labels: second.labels,
                    stored_logits: first.logits,
                    separate,
                });
                appended
            }
        }
    }

    fn extra_loss(
        &mut self,
        model: &M,
        step: &reusebench_core::train::Step,
    ) -> Result<Option<Tensor<1>>, reusebench_core::CoreError> {
        use burn::tensor::loss::cross_entropy_with_logits;
        let Some(pending) = &self.pending else {
            return Ok(None);
        };
        // Separate passes: the two minibatches go through the model now,
        // after the batch's own pass, in Mammoth's order.
        let separate = pending
            .separate
            .clone()
            .map(|(a, b)| Tensor::cat(vec![model.forward(a), model.forward(b)], 0));
        let Some(logits) = separate.as_ref().or(step.extra_logits) else {
            return Ok(None);
        };
        let classes = step.stage.num_classes;
        let device = logits.device();
        let total = logits.dims()[0];
        let ce = |rows: Tensor<2>, labels: &[u32]| {
            cross_entropy_with_logits(
                rows,
                reusebench_core::train::one_hot(labels, classes, &device),
            )
        };
        Ok(Some(match self.loss {
            // In the batch's own loss already (extra_labels).
            ReplayLoss::Er => return Ok(None),
            ReplayLoss::DerPlusPlus { alpha, beta, .. } => {
                let stored = pending
                    .stored_logits
                    .clone()
                    .expect("DER buffers keep logits");
                let diff = logits.clone().narrow(0, 0, pending.first) - stored;
                let mse = (diff.clone() * diff).mean();
                let second = logits
                    .clone()
                    .narrow(0, pending.first, total - pending.first);
                mse * alpha + ce(second, &pending.labels) * beta
            }
        }))
    }

    /// The buffer and the stream: what replay's steps change.
    fn save_state(&self) -> Result<Vec<u8>, reusebench_core::CoreError> {
        Ok(self.buffer.save(self.rng))
    }

    fn restore_state(&mut self, state: &[u8]) -> Result<(), reusebench_core::CoreError> {
        let (buffer, rng) = ReplayBuffer::restore(state)?;
        (*self.buffer, *self.rng) = (buffer, rng);
        Ok(())
    }

    fn after_step(&mut self, step: &reusebench_core::train::Step) {
        if !self.fill_during_training {
            return;
        }
        let logits = match self.loss {
            ReplayLoss::Er => None,
            ReplayLoss::DerPlusPlus { .. } => Some(
                step.logits
                    .clone()
                    .inner()
                    .into_data()
                    .try_into_vec::<f32>()
                    .expect("f32 logits"),
            ),
        };
        let classes = step.stage.num_classes;
        for (k, &i) in step.indices.iter().enumerate() {
            let row = logits.as_ref().map(|l| &l[k * classes..(k + 1) * classes]);
            self.buffer
                .offer(self.rng, self.task_set.image(i), step.labels[k], row);
        }
    }
}
