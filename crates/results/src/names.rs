//! Metric and coordinate names, defined once so that producers and the
//! report cannot drift apart. A few names are both a matrix (rows with
//! `after_task` and `task`) and its summary (the row without coordinates):
//! `knn_acc`, `adapt_acc`.

// ---- coordinates ----
/// Row i of an accuracy matrix R[i][j]: the task trained last.
pub const AFTER_TASK: &str = "after_task";
/// Column j of R[i][j]: the task evaluated.
pub const TASK: &str = "task";
pub const EPOCH: &str = "epoch";
/// The training stage a curve point belongs to (`pretrain`, `fine-tune`, ...).
pub const STAGE: &str = "stage";
pub const ROUND: &str = "round";
pub const K: &str = "k";
pub const ANGLE: &str = "angle";
pub const LEVEL: &str = "level";
pub const REGION: &str = "region";
pub const YEAR: &str = "year";
/// Coordinate: a data group's name (an image folder's groups file).
pub const GROUP: &str = "group";
/// Which model an adaptation run started from (`final`, `scratch`).
pub const START: &str = "start";
/// A named part of a cell's work (`train`, `evaluation`, `knn`, ...).
pub const PHASE: &str = "phase";

// ---- training curves (every stage of every protocol) ----
/// Mean training loss of one epoch (coordinates: stage, task where there is one, epoch).
pub const CURVE_LOSS: &str = "curve_loss";
/// Learning rate at the epoch's first step.
pub const CURVE_LR: &str = "curve_lr";
/// Wall-clock seconds of the epoch. Timing: differs between identical runs.
pub const CURVE_SECONDS: &str = "curve_seconds";

/// Wall-clock seconds a cell spent in one phase (coordinate: phase).
/// Timing: differs between identical runs.
pub const PHASE_SECONDS: &str = "phase_seconds";

/// Metrics that measure time, not results: they differ between two runs
/// of the same cell, so comparisons of results leave them out.
pub const TIMING: &[&str] = &[
    CURVE_SECONDS,
    PHASE_SECONDS,
    ROUND_SECONDS,
    MEAN_ROUND_SECONDS,
    RETRAIN_SECONDS,
    RETRAIN_CPU_SECONDS,
    ENERGY_JOULES,
    CARBON_GRAMS,
    CELL_ENERGY_JOULES,
    CELL_CARBON_GRAMS,
    CELL_CPU_SECONDS,
    ENERGY_GPU_JOULES,
    CELL_ENERGY_GPU_JOULES,
];

// ---- pretrain ----
pub const TEST_ACC: &str = "test_acc";
pub const TRAIN_LOSS: &str = "train_loss";

// ---- shortcuts (pretrain with `shortcut:`, debias) ----
/// Accuracy (%) on test images that all carry their own class's shortcut.
pub const ACC_ALIGNED: &str = "acc_aligned";
/// Accuracy (%) on test images that all carry another class's shortcut.
pub const ACC_CONFLICTING: &str = "acc_conflicting";
/// Accuracy (%) on the test images without any shortcut.
pub const ACC_UNBIASED: &str = "acc_unbiased";
/// Accuracy (%) on test images biased as the pretraining data was (the
/// original task).
pub const ACC_ORIGINAL: &str = "acc_original";

/// The lowest accuracy (%) over the test images' groups: the group the
/// model fails most. Debias: the (class, shortcut agrees / disagrees)
/// groups; a dataset with its own groups (an image folder's groups file):
/// those.
pub const WORST_GROUP_ACC: &str = "worst_group_acc";
/// Accuracy (%) on the test images of one data group (coordinate `group`).
pub const ACC_BY_GROUP: &str = "acc_by_group";
/// The mean over data groups of their accuracy (each group weighs the same).
pub const MEAN_GROUP_ACC: &str = "mean_group_acc";

/// Suffix of the same accuracies measured before tuning (`acc_conflicting_before`).
pub const BEFORE_SUFFIX: &str = "_before";

// ---- debias ----
/// Tuning steps taken (one full batch of the counterexamples each).
pub const TUNING_STEPS: &str = "tuning_steps";
/// 1 when early stopping ended tuning, 0 when the step cap did.
pub const STOPPED_EARLY: &str = "stopped_early";
/// ‖Δθ‖₂ of the pretrained parameters (θ′ for change-penalty).
pub const DELTA_NORM: &str = "delta_norm";

// ---- continual: matrices (after_task, task) ----
pub const ACC_CLASS_IL: &str = "acc_class_il";
pub const ACC_TASK_IL: &str = "acc_task_il";
pub const ACC_DOMAIN_IL: &str = "acc_domain_il";
pub const KNN_ACC: &str = "knn_acc";
pub const ADAPT_ACC: &str = "adapt_acc";
pub const ADAPT_ACC_SCRATCH: &str = "adapt_acc_scratch";
/// Training images an adaptation run used on task j (coordinate `task`).
pub const ADAPT_TRAIN_IMAGES: &str = "adapt_train_images";

// ---- continual: summaries ----
pub const AVG_ACC_CLASS_IL: &str = "avg_acc_class_il";
pub const AVG_ACC_TASK_IL: &str = "avg_acc_task_il";
pub const AVG_ACC_DOMAIN_IL: &str = "avg_acc_domain_il";
pub const FORGETTING_CLASS_IL: &str = "forgetting_class_il";
pub const FORGETTING_TASK_IL: &str = "forgetting_task_il";
pub const FORGETTING_DOMAIN_IL: &str = "forgetting_domain_il";
/// Forgetting as Mammoth computes it (best over every row, final included; >= 0).
pub const FORGETTING_MAMMOTH_CLASS_IL: &str = "forgetting_mammoth_class_il";
pub const FORGETTING_MAMMOTH_TASK_IL: &str = "forgetting_mammoth_task_il";
pub const FORGETTING_MAMMOTH_DOMAIN_IL: &str = "forgetting_mammoth_domain_il";
pub const BWT_CLASS_IL: &str = "bwt_class_il";
pub const BWT_TASK_IL: &str = "bwt_task_il";
pub const BWT_DOMAIN_IL: &str = "bwt_domain_il";
/// kNN forgetting as UCL / LUMP define it (max over all rows of the full
/// kNN matrix minus the final value, mean over every task).
pub const KNN_FORGETTING: &str = "knn_forgetting";
/// Chaudhry-style forgetting of the seen part of the kNN matrix (what
/// `knn_forgetting` meant before it followed UCL).
pub const KNN_FORGETTING_CHAUDHRY: &str = "knn_forgetting_chaudhry";
/// Adaptation gain: mean over tasks of (adapted from the final model −
/// adapted from a random start). Not GEM's forward transfer.
pub const ADAPT_GAIN: &str = "adapt_gain";
/// `adaptation.every_task`: mean over tasks but the last of (best
/// `adapt_acc` the task had after any task − its final `adapt_acc`).
pub const ADAPT_FORGETTING: &str = "adapt_forgetting";
/// Coordinate: training images per class an adaptation used, on every
/// adaptation row when `adaptation.shots` is a list.
pub const SHOTS: &str = "shots";
/// `adaptation.downstream`: accuracy (%) after adapting to the downstream
/// task (coordinate `after_task`; the scalar is after the last task).
pub const ADAPT_DOWNSTREAM_ACC: &str = "adapt_downstream_acc";
/// The same from a randomly initialised backbone (batch-norm statistics
/// from the downstream training set).
pub const ADAPT_DOWNSTREAM_ACC_SCRATCH: &str = "adapt_downstream_acc_scratch";
/// R[i][i+1]: accuracy on the next task before learning it (`after_task` i, `task` i+1).
pub const ACC_CLASS_IL_BEFORE: &str = "acc_class_il_before";
pub const ACC_TASK_IL_BEFORE: &str = "acc_task_il_before";
pub const ACC_DOMAIN_IL_BEFORE: &str = "acc_domain_il_before";
/// A randomly initialised model's accuracy on task i (coordinate `task`),
/// batch-norm statistics recomputed on the task's training data.
pub const ACC_CLASS_IL_RANDOM: &str = "acc_class_il_random";
pub const ACC_TASK_IL_RANDOM: &str = "acc_task_il_random";
pub const ACC_DOMAIN_IL_RANDOM: &str = "acc_domain_il_random";
/// Forward transfer as GEM / Mammoth define it: mean over i >= 1 of
/// R[i-1][i] minus the random model's accuracy on task i.
pub const FWT_CLASS_IL: &str = "fwt_class_il";
pub const FWT_TASK_IL: &str = "fwt_task_il";
pub const FWT_DOMAIN_IL: &str = "fwt_domain_il";

// ---- continual: groups of the final model (FMoW) ----
pub const ACC_ALL: &str = "acc_all";
/// Accuracy per region (coordinate `region`).
pub const ACC_BY_REGION: &str = "acc_by_region";
/// Accuracy per year (coordinate `year`).
pub const ACC_BY_YEAR: &str = "acc_by_year";
pub const WORST_REGION_ACC: &str = "worst_region_acc";
pub const WORST_YEAR_ACC: &str = "worst_year_acc";

// ---- performative: per round (coordinate `round`) ----
/// Accuracy (%) of the method's predictions on the round's test sample.
pub const ROUND_ACC: &str = "round_acc";
/// Mean cross-entropy (nats) of the method's posterior on the round's test sample.
pub const ROUND_CE: &str = "round_ce";
/// KL(true proportions ‖ the method's predicted prior) of the round, for
/// methods that predict a prior.
pub const ROUND_KL_PRIOR: &str = "round_kl_prior";
/// Mean of `round_acc` over rounds 0..=round.
pub const CUMULATIVE_ACC: &str = "cumulative_acc";
/// Mean of `round_ce` over rounds 0..=round.
pub const CUMULATIVE_CE: &str = "cumulative_ce";
/// The largest class proportion of the round (how far the shift has gone).
pub const ROUND_MAX_PROPORTION: &str = "round_max_proportion";
/// Wall-clock seconds of the method's work in the round (predict + update).
/// Timing: differs between identical runs.
pub const ROUND_SECONDS: &str = "round_seconds";

// ---- performative: averages over rounds ----
pub const MEAN_ROUND_ACC: &str = "mean_round_acc";
pub const MEAN_ROUND_CE: &str = "mean_round_ce";
pub const MEAN_ROUND_KL_PRIOR: &str = "mean_round_kl_prior";
/// The deployed model's accuracy (%) on the whole test part of the pool
/// (the pool's own class mix), before any shift.
pub const DEPLOYED_ACC: &str = "deployed_acc";
/// 1 when the rounds followed the reference method's deployments (every
/// method scored on the same shifts), 0 when the method's own.
pub const TRAJECTORY_PAIRED: &str = "trajectory_paired";
/// Mean over rounds of the total variation between the proportions and
/// the class frequencies of the round's test sample: how far the drawing
/// (a minimum per class, classes running out of a small pool) moved the
/// shift from what the simulator asked.
pub const MEAN_SAMPLE_TV: &str = "mean_sample_tv";
/// Mean seconds per round. Timing.
pub const MEAN_ROUND_SECONDS: &str = "mean_round_seconds";

// ---- resque: the prediction (one forward pass) ----
/// RESQUE_dist: mean over classes of the angle (/π) between the summed,
/// spatially averaged activations of clean and shifted images.
pub const RESQUE_DIST: &str = "resque_dist";
/// RESQUE_task: 1 − ARI of k-means (seeded at the class centroids) on the
/// new task's features.
pub const RESQUE_TASK: &str = "resque_task";
/// The corruption's parameter the cell used (σ, a share, an offset, a
/// factor): the level's, the one given, or the calibrated one.
pub const SHIFT_SEVERITY: &str = "shift_severity";
/// Calibration (`drop:`): the pretrained classifier's accuracy (%) on the
/// calibration images clean, and at the chosen severity.
pub const CALIBRATION_ACC_CLEAN: &str = "calibration_acc_clean";
pub const CALIBRATION_ACC_SHIFTED: &str = "calibration_acc_shifted";
/// Calibration: the fraction of the accuracy removed at the chosen
/// severity (what `drop` asked for, to the bisection's resolution, or
/// less where the strongest parameter removes less).
pub const CALIBRATION_DROP: &str = "calibration_drop";

// ---- retraining cost (any protocol that tracks it) ----
/// The pretrained classifier's accuracy (%) on the clean test set.
pub const CLEAN_ACC: &str = "clean_acc";
/// The accuracy (%) retraining aimed for.
pub const RETRAIN_TARGET: &str = "retrain_target";
/// Accuracy (%) on the shifted / new test set before retraining.
pub const ACC_BEFORE_RETRAIN: &str = "acc_before_retrain";
pub const ACC_AFTER_RETRAIN: &str = "acc_after_retrain";
/// Epochs until the target accuracy (the cap when not reached; 0 when
/// reached before any training).
pub const RETRAIN_EPOCHS: &str = "retrain_epochs";
/// 1 when the target was reached, 0 when the cap stopped retraining.
pub const TARGET_REACHED: &str = "target_reached";
/// Mean over an epoch's steps of the global gradient L2 norm (coordinate `epoch`).
pub const GRAD_NORM: &str = "grad_norm";
/// `grad_norm` averaged over the epochs run.
pub const MEAN_GRAD_NORM: &str = "mean_grad_norm";
/// ‖θ − θ₀‖₂ / √n over every trainable parameter.
pub const PARAM_CHANGE: &str = "param_change";
/// ‖θ − θ₀‖₂ / ‖θ₀‖₂ over every trainable parameter.
pub const PARAM_CHANGE_RELATIVE: &str = "param_change_relative";
/// `grad_norm` summed over the epochs run: grows with the epochs.
pub const GRAD_NORM_SUM: &str = "grad_norm_sum";
/// The same per layer (coordinate `layer`).
pub const PARAM_CHANGE_BY_LAYER: &str = "param_change_by_layer";
/// Wall seconds of retraining (with its per-epoch evaluations). Timing.
pub const RETRAIN_SECONDS: &str = "retrain_seconds";
/// CPU seconds of the process during retraining. Timing.
pub const RETRAIN_CPU_SECONDS: &str = "retrain_cpu_seconds";
/// Energy of retraining (joules). Measured: differs between runs.
pub const ENERGY_JOULES: &str = "energy_joules";
/// The GPUs' part of `energy_joules` (NVML), where a driver reports it. Measured.
pub const ENERGY_GPU_JOULES: &str = "energy_gpu_joules";
/// 1 when the energy came from RAPL counters, 0 from the CPU power model.
pub const ENERGY_FROM_RAPL: &str = "energy_from_rapl";
/// Energy × grid intensity (grams of CO₂). Measured.
pub const CARBON_GRAMS: &str = "carbon_grams";
pub const LAYER: &str = "layer";

// ---- any cell of an experiment with `energy:` (metered by the runner) ----
/// Energy of the whole cell (joules). Measured.
pub const CELL_ENERGY_JOULES: &str = "cell_energy_joules";
/// `cell_energy_joules` × grid intensity (grams of CO₂). Measured.
pub const CELL_CARBON_GRAMS: &str = "cell_carbon_grams";
/// CPU seconds of the process over the cell. Timing.
pub const CELL_CPU_SECONDS: &str = "cell_cpu_seconds";
/// The GPUs' part of `cell_energy_joules` (NVML), where a driver reports it.
pub const CELL_ENERGY_GPU_JOULES: &str = "cell_energy_gpu_joules";
/// 1 when the cell's energy came from RAPL, 0 from the CPU model.
pub const CELL_ENERGY_FROM_RAPL: &str = "cell_energy_from_rapl";

// ---- canonicalize ----
/// Accuracy (%) on the test set turned counterclockwise by `angle`
/// degrees (coordinate `angle`, every 45°; edges replicated, as equiadapt).
pub const ACC_ROTATED: &str = "acc_rotated";
/// Accuracy (%) on the test set as it is (`acc_rotated` at 0°).
pub const ACC_UPRIGHT: &str = "acc_upright";
/// Mean of `acc_rotated` over the eight multiples of 45° (the paper's
/// C8-averaged accuracy).
pub const ACC_C8_AVG: &str = "acc_c8_avg";
/// Mean of `acc_rotated` over the cell's group C_N.
pub const ACC_GROUP_AVG: &str = "acc_group_avg";
/// Share (%) of test images whose predicted class is not the same in all
/// their C_N turns.
pub const INVARIANCE_ERROR: &str = "invariance_error";
/// Share (%) of C_N-turned test images the canonicalizer maps back upright.
pub const UPRIGHT_FRACTION: &str = "upright_fraction";

/// The three names of one continual setting (`class_il`, `task_il`, `domain_il`).
pub struct SettingNames {
    pub matrix: &'static str,
    pub avg: &'static str,
    /// Chaudhry et al.'s forgetting (can be negative).
    pub forgetting: &'static str,
    /// Mammoth's forgetting (>= 0).
    pub forgetting_mammoth: &'static str,
    pub bwt: &'static str,
    pub before: &'static str,
    pub random: &'static str,
    pub fwt: &'static str,
}

/// Names of a continual setting by its short name.
pub fn setting(name: &str) -> Option<SettingNames> {
    // In the order of the fields.
    let s = |n: [&'static str; 8]| SettingNames {
        matrix: n[0],
        avg: n[1],
        forgetting: n[2],
        forgetting_mammoth: n[3],
        bwt: n[4],
        before: n[5],
        random: n[6],
        fwt: n[7],
    };
    match name {
        "class_il" => Some(s([
            ACC_CLASS_IL,
            AVG_ACC_CLASS_IL,
            FORGETTING_CLASS_IL,
            FORGETTING_MAMMOTH_CLASS_IL,
            BWT_CLASS_IL,
            ACC_CLASS_IL_BEFORE,
            ACC_CLASS_IL_RANDOM,
            FWT_CLASS_IL,
        ])),
        "task_il" => Some(s([
            ACC_TASK_IL,
            AVG_ACC_TASK_IL,
            FORGETTING_TASK_IL,
            FORGETTING_MAMMOTH_TASK_IL,
            BWT_TASK_IL,
            ACC_TASK_IL_BEFORE,
            ACC_TASK_IL_RANDOM,
            FWT_TASK_IL,
        ])),
        "domain_il" => Some(s([
            ACC_DOMAIN_IL,
            AVG_ACC_DOMAIN_IL,
            FORGETTING_DOMAIN_IL,
            FORGETTING_MAMMOTH_DOMAIN_IL,
            BWT_DOMAIN_IL,
            ACC_DOMAIN_IL_BEFORE,
            ACC_DOMAIN_IL_RANDOM,
            FWT_DOMAIN_IL,
        ])),
        _ => None,
    }
}
