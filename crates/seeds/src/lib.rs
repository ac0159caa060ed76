//! Every random stream a cell draws, derived in one place from the cell's
//! seed, the stream's purpose and, where a purpose has many streams, an
//! index (a task, an epoch, an image).
//!
//! One hash serves every purpose: the seed, the purpose's tag and its two
//! indices go through SplitMix64's finaliser in turn. The XOR and
//! multiply-add derivations this replaced collided (`seed ^ task` made
//! seed 1, task 0 the stream of seed 0, task 1); the tests below check
//! that distinct (seed, purpose, index) triples stay apart on the small
//! ranges grids use.

use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

/// What a random stream is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Purpose {
    /// A fresh backbone's weights.
    Backbone,
    /// A fresh head's weights: apart from the backbone's, so that loading
    /// a checkpoint does not change the head.
    Head,
    /// The shuffle of one epoch of a training stage whose seed is the
    /// cell's seed here.
    Epoch { epoch: usize },
    /// A continual training stage: task `task`, stage `salt` (1 fine-tune,
    /// 2 linear probe, others the method's own).
    Stage { task: usize, salt: u64 },
    /// The replay buffer's reservoir and draws (ER, DER++).
    ReplayBuffer,
    /// Side-tuning's side network and α at task `task`.
    SideInit { task: usize },
    /// Side-tuning's own batch streams.
    SideBatches { stream: u64 },
    /// MAS / EWC importance estimation after task `task`.
    Importance { task: usize },
    /// The adaptation evaluation's probe.
    Adaptation,
    /// Generated data: the training split.
    SyntheticTrain,
    /// Generated data: the test split.
    SyntheticTest,
    /// A corruption's noise on image `image` of a set, under a stream seed.
    CorruptImage { image: usize },
    /// The pretrain protocol's shortcut injection.
    Shortcut,
    /// Debias: which counterexamples are drawn.
    Counterexamples,
    /// Debias: the shortcut on the test images.
    DebiasTest,
    /// Debias side-tuning's side network.
    DebiasSide,
    /// Performative: the pool's split.
    Pool,
    /// Performative: each round's samples.
    Rounds,
    /// Performative: PaP's adapter training.
    Pap,
    /// Performative: the retrain baseline's training after round `round`.
    RetrainRound { round: usize },
    /// Canonicalize: the canonicalizer's weights.
    Canonicalizer,
    /// Canonicalize: the turns of training and test images.
    Rotation,
    /// Resque: the pretraining / shift split.
    ResqueSplit,
    /// Resque: the shifted training images.
    ShiftTrain,
    /// Resque: the shifted test images.
    ShiftTest,
    /// The validation hold-out of class `class` (seeded by the
    /// `validation.seed`, not the cell's seed).
    HoldOut { class: u32 },
    /// A continual class order (`class_order: seeded` or
    /// `class_order_seed`).
    ClassOrder,
    /// FMoW's random (in-distribution) split.
    FmowRandomSplit,
    /// A seeded per-class subset of a dataset (`subset_seed`), class `class`.
    Subset { class: u32 },
    /// Canonicalize: the prior-only warm-up's shuffles.
    PriorWarmUp,
    /// A per-class partition into parts (`ClassParts`), class `class`;
    /// seeded by the partition's own seed, not the cell's.
    ClassParts { class: u32 },
    /// RESQUE: the corruption of the calibration images.
    Calibration,
    /// Canonicalize: the canonicalizer's dropout masks in stage `stage`
    /// (0 the prior-only warm-up, 1 the joint training).
    CanonicalizerDropout { stage: usize },
}

impl Purpose {
    /// A tag per purpose, then up to two indices.
    fn key(self) -> (u64, u64, u64) {
        use Purpose::*;
        match self {
            Backbone => (1, 0, 0),
            Head => (2, 0, 0),
            Epoch { epoch } => (3, epoch as u64, 0),
            Stage { task, salt } => (4, task as u64, salt),
            ReplayBuffer => (5, 0, 0),
            SideInit { task } => (6, task as u64, 0),
            SideBatches { stream } => (7, stream, 0),
            Importance { task } => (8, task as u64, 0),
            Adaptation => (9, 0, 0),
            SyntheticTrain => (10, 0, 0),
            SyntheticTest => (11, 0, 0),
            CorruptImage { image } => (12, image as u64, 0),
            Shortcut => (13, 0, 0),
            Counterexamples => (14, 0, 0),
            DebiasTest => (15, 0, 0),
            DebiasSide => (16, 0, 0),
            Pool => (17, 0, 0),
            Rounds => (18, 0, 0),
            Pap => (19, 0, 0),
            RetrainRound { round } => (20, round as u64, 0),
            Canonicalizer => (21, 0, 0),
            Rotation => (22, 0, 0),
            ResqueSplit => (23, 0, 0),
            ShiftTrain => (24, 0, 0),
            ShiftTest => (25, 0, 0),
            HoldOut { class } => (26, u64::from(class), 0),
            ClassOrder => (27, 0, 0),
            FmowRandomSplit => (28, 0, 0),
            Subset { class } => (29, u64::from(class), 0),
            PriorWarmUp => (30, 0, 0),
            ClassParts { class } => (31, u64::from(class), 0),
            Calibration => (32, 0, 0),
            CanonicalizerDropout { stage } => (33, stage as u64, 0),
        }
    }
}

/// SplitMix64's finaliser: a bijection on u64 that spreads every input bit
/// over the output.
fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// The seeds of one cell's random streams.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Seeds(u64);

impl Seeds {
    pub fn new(seed: u64) -> Self {
        Self(seed)
    }

    /// The cell's own seed.
    pub fn seed(self) -> u64 {
        self.0
    }

    /// The seed of the stream for `purpose`: the one derivation.
    pub fn of(self, purpose: Purpose) -> u64 {
        // Each step adds the golden-ratio increment before mixing, as
        // SplitMix64 does, so that zero inputs do not stay zero.
        const STEP: u64 = 0x9E37_79B9_7F4A_7C15;
        let (tag, i, j) = purpose.key();
        [tag, i, j]
            .into_iter()
            .fold(mix(self.0.wrapping_add(STEP)), |h, x| {
                mix(h ^ x.wrapping_add(STEP))
            })
    }

    /// The generator of the stream for `purpose`.
    pub fn rng(self, purpose: Purpose) -> ChaCha8Rng {
        ChaCha8Rng::seed_from_u64(self.of(purpose))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    /// Every purpose, with its indices over `0..n`.
    fn all_purposes(n: usize) -> Vec<Purpose> {
        use Purpose::*;
        let mut v = vec![
            Backbone,
            Head,
            ReplayBuffer,
            Adaptation,
            SyntheticTrain,
            SyntheticTest,
            Shortcut,
            Counterexamples,
            DebiasTest,
            DebiasSide,
            Pool,
            Rounds,
            Pap,
            Canonicalizer,
            Rotation,
            ResqueSplit,
            ShiftTrain,
            ShiftTest,
            ClassOrder,
            FmowRandomSplit,
            PriorWarmUp,
            Calibration,
        ];
        for i in 0..n {
            v.extend([
                Epoch { epoch: i },
                SideInit { task: i },
                SideBatches { stream: i as u64 },
                Importance { task: i },
                CorruptImage { image: i },
                RetrainRound { round: i },
                HoldOut { class: i as u32 },
                Subset { class: i as u32 },
                ClassParts { class: i as u32 },
                CanonicalizerDropout { stage: i },
            ]);
            for salt in 0..n as u64 {
                v.push(Stage { task: i, salt });
            }
        }
        v
    }

    /// No two (seed, purpose, index) triples share a stream on the ranges
    /// grids use: 32 seeds, every purpose, indices 0..32.
    #[test]
    fn distinct_purposes_seeds_and_indices_never_collide() {
        let purposes = all_purposes(32);
        let mut seen: HashMap<u64, (u64, Purpose)> = HashMap::new();
        for seed in 0..32 {
            let s = Seeds::new(seed);
            for &p in &purposes {
                if let Some(other) = seen.insert(s.of(p), (seed, p)) {
                    panic!("seed {seed} {p:?} collides with {other:?}");
                }
            }
        }
        assert_eq!(seen.len(), 32 * purposes.len());
    }

    /// The collision the old `seed ^ task` had is gone.
    #[test]
    fn seed_one_task_zero_is_not_seed_zero_task_one() {
        let a = Seeds::new(1).of(Purpose::Importance { task: 0 });
        let b = Seeds::new(0).of(Purpose::Importance { task: 1 });
        assert_ne!(a, b);
        // Nor does a purpose equal the bare seed (the old Backbone stream).
        assert_ne!(Seeds::new(5).of(Purpose::Backbone), 5);
    }

    /// The derivation is pinned: a change here changes every row, so it
    /// must be deliberate (and the code version changes with it).
    #[test]
    fn derivation_is_pinned() {
        let s = Seeds::new(3);
        let mut h = mix(3u64.wrapping_add(0x9E37_79B9_7F4A_7C15));
        for x in [8u64, 2, 0] {
            h = mix(h ^ x.wrapping_add(0x9E37_79B9_7F4A_7C15));
        }
        assert_eq!(s.of(Purpose::Importance { task: 2 }), h);
        // SplitMix64's published first output for state 0.
        assert_eq!(mix(0x9E37_79B9_7F4A_7C15), 0xE220_A839_7B1D_CDAF);
    }
}
