//! Checkpoints inside a cell, so that a killed or preempted cell resumes
//! where it was instead of from its beginning.
//!
//! Every training stage a cell runs through [`crate::train::fit`] is
//! numbered in the order it starts (a cell's control flow is deterministic,
//! so a rerun numbers its stages the same). A stage writes its state every
//! `every` epochs, at its end, and after the batch it is on when the
//! process is asked to leave ([`request_stop`]): the model, the optimizer's
//! state, the hooks' own state (a replay buffer and its random stream), the
//! epoch and batch reached, and its curve rows. A rerun of the cell skips a
//! finished stage (its model is loaded) and continues an unfinished one
//! from its last state. Everything between stages (evaluation, feature
//! extraction) is recomputed: it is deterministic, and cheaper than
//! training. Shuffling and augmentation are seeded by (stage seed, epoch),
//! so they need no state of their own.
//!
//! A stage's checkpoint is used only when the stage starts from the same
//! model as when it was written (a fingerprint of its parameters), with
//! the same name, seed and epochs; otherwise it is ignored and the stage
//! trains afresh.
//!
//! Parameter ids: the model is loaded into the rerun's own modules, which
//! keep their own `ParamId`s (penalties computed before the stage are keyed
//! by them); the optimizer's state, keyed by the ids of the run that wrote
//! it, is renamed to the rerun's ids by the parameters' order.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use burn::module::{Module, ModuleVisitor, Param};
use burn::optim::{ModuleOptimizer, OptimizerRecord};
use burn::tensor::Tensor;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use crate::error::CoreError;
use crate::metrics::MetricRow;

static STOP: AtomicBool = AtomicBool::new(false);
static PARKED: AtomicBool = AtomicBool::new(false);
static TRAINING: AtomicUsize = AtomicUsize::new(0);

/// Asks every running stage to checkpoint after its current batch and then
/// park its thread (the process is about to exit: Slurm's warning before
/// preemption). Watch [`parked`] and [`training`] to know when to exit.
pub fn request_stop() {
    STOP.store(true, Ordering::SeqCst);
}

/// Whether a stage has written its state after [`request_stop`] and parked.
pub fn parked() -> bool {
    PARKED.load(Ordering::SeqCst)
}

/// Whether a checkpointed stage is training now (when none is, the last
/// finished stage's checkpoint is the cell's latest state).
pub fn training() -> bool {
    TRAINING.load(Ordering::SeqCst) > 0
}

pub(crate) fn stop_requested() -> bool {
    STOP.load(Ordering::SeqCst)
}

/// Marks the thread's stage as saved and blocks it for good: the process
/// exits from another thread, and returning an error instead would record
/// the cell as failed.
pub(crate) fn park() -> ! {
    PARKED.store(true, Ordering::SeqCst);
    loop {
        std::thread::park();
    }
}

/// Counts a checkpointed stage as training while it lives.
pub(crate) struct TrainingGuard;

impl TrainingGuard {
    pub(crate) fn enter() -> Self {
        TRAINING.fetch_add(1, Ordering::SeqCst);
        Self
    }
}

impl Drop for TrainingGuard {
    fn drop(&mut self) {
        TRAINING.fetch_sub(1, Ordering::SeqCst);
    }
}

/// Where a cell keeps its stages' checkpoints, and how often a stage writes one.
#[derive(Debug)]
pub struct Checkpoints {
    dir: PathBuf,
    every: usize,
    next: AtomicUsize,
}

impl Checkpoints {
    /// Checkpoints in `dir`, every `every` epochs (>= 1) and at each stage's end.
    pub fn new(dir: impl Into<PathBuf>, every: usize) -> Self {
        Self {
            dir: dir.into(),
            every: every.max(1),
            next: AtomicUsize::new(0),
        }
    }

    /// The next stage's slot (stages are numbered in the order they start).
    pub(crate) fn slot(&self) -> Slot {
        let index = self.next.fetch_add(1, Ordering::SeqCst);
        Slot {
            dir: self.dir.join(format!("stage-{index:04}")),
            index,
            every: self.every,
        }
    }
}

/// One stage's place among the cell's checkpoints.
#[derive(Debug)]
pub(crate) struct Slot {
    dir: PathBuf,
    pub(crate) index: usize,
    pub(crate) every: usize,
}

/// What a stage had done when it wrote its checkpoint.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct StageState {
    /// Name, seed and epochs of the stage (a checkpoint of another stage is not used).
    pub name: String,
    pub seed: u64,
    pub epochs: usize,
    /// The fingerprint of the model the stage started from.
    pub start: Fingerprint,
    /// The epoch to continue, and how many of its batches are done.
    pub epoch: usize,
    pub batch: usize,
    /// The loss summed over those batches, and the epoch's learning rate.
    pub epoch_loss: f64,
    pub epoch_lr: f64,
    /// Optimizer steps taken in the stage.
    pub step: usize,
    pub stats: crate::train::StageStats,
    /// Whether the stage is done (its last epoch ran, or a hook stopped it).
    pub finished: bool,
    /// The stage's curve rows so far.
    pub curve: Vec<MetricRow>,
    /// The model's parameter ids in visiting order when it was written.
    pub ids: Vec<u64>,
}

/// Sums over a model's parameters in visiting order, added on the host one
/// value at a time: equal for equal models.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub(crate) struct Fingerprint {
    pub sum: f64,
    pub abs: f64,
    pub count: usize,
}

struct Visit {
    ids: Vec<u64>,
    print: Fingerprint,
}

impl ModuleVisitor for Visit {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
        let value = param.val();
        self.ids.push(param.id.val());
        self.print.sum += value.clone().sum().into_scalar::<f32>() as f64;
        self.print.abs += value.abs().sum().into_scalar::<f32>() as f64;
        self.print.count += 1;
    }
}

/// The model's fingerprint and its parameter ids in visiting order.
pub(crate) fn fingerprint<M: Module>(model: &M) -> (Fingerprint, Vec<u64>) {
    let mut v = Visit {
        ids: Vec::new(),
        print: Fingerprint {
            sum: 0.0,
            abs: 0.0,
            count: 0,
        },
    };
    model.visit(&mut v);
    (v.print, v.ids)
}

const STATE: &str = "state.json";
const MODEL: &str = "model.safetensors";
const OPTIMIZER: &str = "optimizer.bpk";
const HOOKS: &str = "hooks.bin";

fn err(path: &Path, message: impl std::fmt::Display) -> CoreError {
    CoreError::Checkpoint {
        path: path.to_path_buf(),
        message: message.to_string(),
    }
}

/// What a checkpoint gives back to the stage that resumes from it.
pub(crate) struct Restored<M> {
    pub model: M,
    pub optimizer: ModuleOptimizer,
    pub hooks: Vec<u8>,
    pub state: StageState,
}

impl Slot {
    /// Writes the stage's state atomically: into a fresh folder, which
    /// then replaces the last one by renames (a crash at any point leaves
    /// the old or the new checkpoint whole).
    pub(crate) fn save<M: Module>(
        &self,
        model: &M,
        optimizer: &ModuleOptimizer,
        hooks: &[u8],
        state: &StageState,
    ) -> Result<(), CoreError> {
        let tmp = self
            .dir
            .with_extension(format!("tmp-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&tmp);
        std::fs::create_dir_all(&tmp).map_err(|e| err(&tmp, e))?;
        crate::checkpoint::save_module(model, &[], &tmp.join(MODEL))?;
        let bytes = optimizer
            .into_bytes()
            .map_err(|e| err(&tmp.join(OPTIMIZER), e))?;
        write(&tmp.join(OPTIMIZER), &bytes)?;
        write(&tmp.join(HOOKS), hooks)?;
        let json = serde_json::to_vec(state).map_err(|e| err(&tmp.join(STATE), e))?;
        // The state file last: a folder without it is incomplete.
        write(&tmp.join(STATE), &json)?;
        let old = self.dir.with_extension("old");
        let _ = std::fs::remove_dir_all(&old);
        if self.dir.exists() {
            std::fs::rename(&self.dir, &old).map_err(|e| err(&self.dir, e))?;
        }
        std::fs::rename(&tmp, &self.dir).map_err(|e| err(&self.dir, e))?;
        let _ = std::fs::remove_dir_all(&old);
        Ok(())
    }

    /// The stage's last checkpoint, if one was written for this stage
    /// starting from this model: loaded into `model` and `optimizer`.
    /// `Ok(None)` when there is none or it belongs to another stage.
    pub(crate) fn load<M: Module>(
        &self,
        model: &M,
        optimizer: ModuleOptimizer,
        stage: &crate::train::Stage,
        start: Fingerprint,
        ids: &[u64],
    ) -> Result<Result<Restored<M>, ModuleOptimizer>, CoreError> {
        // A crash between the two renames of `save` leaves only `.old`.
        let dir = [self.dir.clone(), self.dir.with_extension("old")]
            .into_iter()
            .find(|d| d.join(STATE).is_file());
        let Some(dir) = dir else {
            return Ok(Err(optimizer));
        };
        let path = dir.join(STATE);
        let text = std::fs::read(&path).map_err(|e| err(&path, e))?;
        let state: StageState = serde_json::from_slice(&text).map_err(|e| err(&path, e))?;
        if state.name != stage.name
            || state.seed != stage.seed
            || state.epochs != stage.epochs
            || state.start != start
            || state.ids.len() != ids.len()
        {
            return Ok(Err(optimizer));
        }
        let loaded =
            crate::checkpoint::load_module(model.clone(), &dir.join(MODEL), "the stage's model")?;
        let opt_path = dir.join(OPTIMIZER);
        let bytes = std::fs::read(&opt_path).map_err(|e| err(&opt_path, e))?;
        let renamed: HashMap<u64, u64> =
            state.ids.iter().copied().zip(ids.iter().copied()).collect();
        let record = rename_optimizer_ids(bytes, &renamed).map_err(|e| err(&opt_path, e))?;
        let hooks_path = dir.join(HOOKS);
        let hooks = std::fs::read(&hooks_path).map_err(|e| err(&hooks_path, e))?;
        Ok(Ok(Restored {
            model: loaded,
            optimizer: optimizer.load_record(record),
            hooks,
            state,
        }))
    }
}

fn write(path: &Path, bytes: &[u8]) -> Result<(), CoreError> {
    use std::io::Write;
    let mut f = std::fs::File::create(path).map_err(|e| err(path, e))?;
    f.write_all(bytes)
        .and_then(|_| f.sync_all())
        .map_err(|e| err(path, e))
}

/// An optimizer record whose parameter ids (in tensor names, scalar keys,
/// path keys and tensor ids, all `"{id}..."`) are renamed by `renamed`.
fn rename_optimizer_ids(
    bytes: Vec<u8>,
    renamed: &HashMap<u64, u64>,
) -> Result<OptimizerRecord, String> {
    let rename_key = |key: &str| -> String {
        let (head, tail) = key
            .split_once('.')
            .map_or((key, None), |(h, t)| (h, Some(t)));
        match head.parse::<u64>().ok().and_then(|id| renamed.get(&id)) {
            Some(new) => match tail {
                Some(t) => format!("{new}.{t}"),
                None => new.to_string(),
            },
            None => key.to_string(),
        }
    };
    let reader = burn_pack::Reader::from_bytes(burn_pack::Bytes::from_bytes_vec(bytes))
        .map_err(|e| format!("{e:?}"))?;
    let scalars = reader.scalars().clone();
    let metadata = reader.metadata().clone();
    let tensors = reader
        .into_tensors()
        .map_err(|e| format!("{e:?}"))?
        .into_iter()
        .map(|t| {
            let (name, dtype, shape, id, data) = t.into_parts().map_err(|e| format!("{e:?}"))?;
            let id = id.map(|i| renamed.get(&i).copied().unwrap_or(i));
            Ok(burn_pack::Tensor::new(
                rename_key(&name),
                dtype,
                shape,
                id,
                data,
            ))
        })
        .collect::<Result<Vec<_>, String>>()?;
    let mut writer = burn_pack::Writer::new(tensors);
    for (k, v) in &scalars {
        writer = writer.with_scalar(&rename_key(k), *v);
    }
    for (k, v) in &metadata {
        writer = writer.with_metadata(&rename_key(k), v);
    }
    let bytes = writer.into_bytes().map_err(|e| format!("{e:?}"))?;
    OptimizerRecord::from_bytes(bytes).map_err(|e| format!("{e:?}"))
}

/// A ChaCha stream's position, to save a generator with a checkpoint and
/// set it back exactly.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RngState {
    pub seed: [u8; 32],
    pub stream: u64,
    /// The word position as a decimal string (JSON numbers stop at 2^53).
    pub word_pos: String,
}

impl RngState {
    pub fn of(rng: &ChaCha8Rng) -> Self {
        Self {
            seed: rng.get_seed(),
            stream: rng.get_stream(),
            word_pos: rng.get_word_pos().to_string(),
        }
    }

    pub fn restore(&self) -> Result<ChaCha8Rng, CoreError> {
        use rand::SeedableRng;
        let mut rng = ChaCha8Rng::from_seed(self.seed);
        rng.set_stream(self.stream);
        let pos = self
            .word_pos
            .parse::<u128>()
            .map_err(|e| CoreError::config("", format!("random stream position: {e}")))?;
        rng.set_word_pos(pos);
        Ok(rng)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng};

    /// A checkpoint's fingerprint is compared exactly after JSON: without
    /// serde_json's `float_roundtrip` this value came back 1 ulp off and no
    /// pretrain stage ever resumed.
    #[test]
    fn a_fingerprint_survives_json_bit_for_bit() {
        let print = Fingerprint {
            sum: 1252.8705846816301,
            abs: 10942.71785505116,
            count: 102,
        };
        let back: Fingerprint =
            serde_json::from_str(&serde_json::to_string(&print).unwrap()).unwrap();
        assert_eq!(back.sum.to_bits(), print.sum.to_bits());
        assert_eq!(back, print);
    }

    #[test]
    fn a_restored_stream_continues_where_it_was() {
        let mut rng = ChaCha8Rng::seed_from_u64(7);
        let _: [u64; 5] = rng.random();
        let saved = serde_json::to_string(&RngState::of(&rng)).unwrap();
        let want: [u64; 4] = rng.random();
        let mut back = serde_json::from_str::<RngState>(&saved)
            .unwrap()
            .restore()
            .unwrap();
        let got: [u64; 4] = back.random();
        assert_eq!(got, want);
    }
}
