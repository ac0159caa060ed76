//! Every random stream a cell draws, derived in one place from the cell's
//! seed, the stream's purpose and, where a purpose has many streams, an
//! index (a task, an epoch, an image).
//!
//! Each purpose keeps the derivation the code used before this type
//! existed, so that results stay identical bit for bit; those derivations
//! are written out once, in [`Seeds::of`], and nowhere else. Some of them
//! collide (`Importance { task: 1 }` of seed 0 is `Importance { task: 0 }`
//! of seed 1); replacing them by one hash changes every result and is the
//! continual round's work, not this type's.

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

    /// The seed of the stream for `purpose`.
    pub fn of(self, purpose: Purpose) -> u64 {
        let s = self.0;
        match purpose {
            Purpose::Backbone => s,
            Purpose::Head => s ^ 0x005E_ED0F_4EAD,
            Purpose::Epoch { epoch } => s
                .wrapping_mul(0x9E37_79B9_7F4A_7C15)
                .wrapping_add(epoch as u64),
            Purpose::Stage { task, salt } => s
                .wrapping_mul(1_000_003)
                .wrapping_add(task as u64 * 101 + salt),
            Purpose::ReplayBuffer => s ^ 0xB0FF_E400,
            Purpose::SideInit { task } => s ^ 0x11FE_10B6 ^ task as u64,
            Purpose::SideBatches { stream } => s ^ 0x051D_E000 ^ (stream << 32),
            Purpose::Importance { task } => s ^ task as u64,
            Purpose::Adaptation => s ^ 0xADA9_7000,
            Purpose::SyntheticTrain => s.wrapping_mul(2).wrapping_add(1),
            Purpose::SyntheticTest => s.wrapping_mul(2).wrapping_add(2),
            Purpose::CorruptImage { image } => s ^ (image as u64).wrapping_mul(0x9E37_79B9),
            Purpose::Shortcut => s ^ 0x0000_5407_C047,
            Purpose::Counterexamples => s ^ 0x0000_C0DE_7E45,
            Purpose::DebiasTest => s ^ 0x0000_7E57_B1A5,
            Purpose::DebiasSide => s ^ 0x0000_051D_E0DE,
            Purpose::Pool => s ^ 0x0000_9001_5911,
            Purpose::Rounds => s ^ 0x0000_4D0C_0A7D,
            Purpose::Pap => s ^ 0x0000_7A70_ADA7,
            Purpose::RetrainRound { round } => s.wrapping_add(round as u64),
            Purpose::Canonicalizer => s ^ 0x0000_CA11_0111,
            Purpose::Rotation => s ^ 0x0000_0207_A7E5,
            Purpose::ResqueSplit => s ^ 0x0000_5E50_0502,
            Purpose::ShiftTrain => s ^ 0x0000_5E50_7A17,
            Purpose::ShiftTest => s ^ 0x0000_5E50_7E57,
        }
    }

    /// The generator of the stream for `purpose`.
    pub fn rng(self, purpose: Purpose) -> ChaCha8Rng {
        ChaCha8Rng::seed_from_u64(self.of(purpose))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The derivations are the ones results were written with: a change
    /// here changes every row, so it must be deliberate.
    #[test]
    fn derivations_are_pinned() {
        let s = Seeds::new(3);
        assert_eq!(s.of(Purpose::Backbone), 3);
        assert_eq!(s.of(Purpose::Head), 3 ^ 0x005E_ED0F_4EAD);
        assert_eq!(s.of(Purpose::Importance { task: 2 }), 1);
        assert_eq!(s.of(Purpose::SyntheticTrain), 7);
        assert_eq!(s.of(Purpose::SyntheticTest), 8);
        assert_eq!(
            s.of(Purpose::Stage { task: 1, salt: 2 }),
            3 * 1_000_003 + 103
        );
        assert_eq!(
            s.of(Purpose::Epoch { epoch: 4 }),
            3u64.wrapping_mul(0x9E37_79B9_7F4A_7C15) + 4
        );
        assert_eq!(
            s.of(Purpose::SideBatches { stream: 1 }),
            3 ^ 0x051D_E000 ^ (1 << 32)
        );
    }

    /// Purposes without an index are apart from one another for the same
    /// seed (the XOR constants differ).
    #[test]
    fn plain_purposes_differ() {
        use Purpose::*;
        let plain = [
            Backbone,
            Head,
            ReplayBuffer,
            Adaptation,
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
            SyntheticTrain,
            SyntheticTest,
        ];
        for seed in 0..16 {
            let s = Seeds::new(seed);
            let mut v: Vec<u64> = plain.iter().map(|&p| s.of(p)).collect();
            v.sort_unstable();
            v.dedup();
            assert_eq!(v.len(), plain.len(), "seed {seed}");
        }
    }
}
