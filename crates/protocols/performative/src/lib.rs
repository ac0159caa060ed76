//! `performative`: deployments that shift class proportions (Demirel et
//! al. 2024, "Adjusting Pretrained Backbones for Performativity"). A frozen
//! pretrained classifier (backbone and head from `pretrain`) is deployed for
//! `rounds` rounds; each round's class proportions answer the deployed
//! method's per-class accuracy of the round before ([`simulator`]), and a
//! method ([`methods`]) adapts the posteriors to the moving prior.
//!
//! The pool is a split of the dataset the backbone did not train on (the
//! test split by default), divided per class into a labelled training part
//! (rounds' training samples, BBSE's confusion matrix) and a test part
//! (rounds' test samples). The deployed model's features and posteriors are
//! computed once per pool image; no round runs the backbone.

pub mod label_shift;
pub mod methods;
pub mod simulator;

use reusebench_core::Evaluator;
use reusebench_core::Purpose;
use reusebench_core::bounded::{Positive, PositiveInt};
use reusebench_core::feature_cache::FeatureCache;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use crate::label_shift::{class_proportions, kl_divergence, softmax_rows};
use rand::seq::SliceRandom;
use reusebench_core::CoreError;
use reusebench_core::backbone::BackboneConfig;
use reusebench_core::checkpoint::load_head;
use reusebench_core::features::{features, head_logits};
use reusebench_core::metrics::{Coords, MetricRow, names};
use reusebench_core::protocol::{
    Checks, Protocol, RunEnv, check_classes, default_eval_batch_size, model_inputs,
};
use reusebench_data::{DatasetSpec, ImageSet, NormalizationChoice};
use serde::{Deserialize, Serialize};

use methods::{Deployed, Feedback, PerformativeMethod, RoundInput, method_key};
use simulator::{Replace, allocate, dirichlet, draw, draw_exhaust, fill_missing, next_proportions};

/// The protocol, as the runner's registry names it.
pub struct Performative;

/// Which split of the dataset is the pool.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum PoolSplit {
    /// The test split: images the pretrained model never trained on.
    #[default]
    Test,
    /// The training split (only for a backbone pretrained elsewhere).
    Train,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PoolConfig {
    #[serde(default)]
    pub split: PoolSplit,
    /// Share of each class's pool images in the labelled training part;
    /// the rest is the test part.
    #[serde(default = "default_train_fraction")]
    pub train_fraction: f64,
}

fn default_train_fraction() -> f64 {
    0.5
}

impl Default for PoolConfig {
    fn default() -> Self {
        Self {
            split: PoolSplit::Test,
            train_fraction: default_train_fraction(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PerformativeConfig {
    pub seed: u64,
    pub data: DatasetSpec,
    /// Original class labels (renumbered 0..n in this order), as the
    /// pretrain cell used them; all when absent.
    #[serde(default)]
    pub classes: Option<Vec<u32>>,
    /// The deployed backbone (a `pretrain` checkpoint).
    #[serde(default)]
    pub backbone: BackboneConfig,
    /// The deployed head (`pretrain`'s `head_output`).
    pub head: PathBuf,
    #[serde(default)]
    pub normalization: NormalizationChoice,
    #[serde(default = "default_eval_batch_size")]
    pub eval_batch_size: usize,
    #[serde(default)]
    pub pool: PoolConfig,
    #[serde(default = "default_rounds")]
    pub rounds: PositiveInt,
    /// Round 0's proportions are Dirichlet(α·1).
    #[serde(default = "default_alpha")]
    pub dirichlet_alpha: Positive,
    /// τ in softmax(sign · acc / τ).
    pub temperature: Positive,
    /// −1: the classes the model gets wrong are sampled more (adversarial);
    /// +1: the ones it gets right.
    #[serde(default = "default_sign")]
    pub sign: f64,
    /// Training images each round draws (labelled; what methods learn from).
    #[serde(default = "default_n_train")]
    pub n_train: PositiveInt,
    /// Test images each round draws (what the round is scored on).
    #[serde(default = "default_n_test")]
    pub n_test: PositiveInt,
    /// Test images of every class in every round, whatever the proportions.
    #[serde(default = "default_min_per_class")]
    pub min_per_class: usize,
    /// How a round's sample is drawn from the pool.
    #[serde(default)]
    pub replace: Replace,
    /// Whose deployments move the proportions: `paired` (the default, as
    /// the authors score their baselines) runs `reference` alongside and
    /// scores the method on the rounds the reference's accuracy induces;
    /// `own` lets the method's own accuracy move them.
    #[serde(default)]
    pub trajectory: Trajectory,
    /// The method whose deployments drive a paired trajectory.
    #[serde(default = "default_reference")]
    pub reference: PerformativeMethod,
    pub method: PerformativeMethod,
}

/// Whose accuracy moves the class proportions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Trajectory {
    /// The reference method's: every method is scored on the same shifts.
    #[default]
    Paired,
    /// The method's own (feedback studies).
    Own,
}

fn default_reference() -> PerformativeMethod {
    PerformativeMethod::Pap(methods::Pap::default())
}

fn default_rounds() -> PositiveInt {
    PositiveInt::of(200)
}
fn default_alpha() -> Positive {
    Positive::of(100.0)
}
fn default_sign() -> f64 {
    -1.0
}
fn default_n_train() -> PositiveInt {
    PositiveInt::of(1000)
}
fn default_n_test() -> PositiveInt {
    PositiveInt::of(2000)
}
fn default_min_per_class() -> usize {
    5
}

impl PerformativeConfig {
    fn class_count(&self) -> Option<usize> {
        match &self.classes {
            Some(c) => Some(c.len()),
            None => self.data.num_classes(),
        }
    }

    /// Images per class of the pool's training and test parts, where the
    /// dataset's class counts are known without decoding images.
    fn part_sizes(&self) -> Option<Vec<(usize, usize)>> {
        let counts = self.data.class_counts(self.pool.split == PoolSplit::Test)?;
        let classes: Vec<usize> = match &self.classes {
            Some(c) => c.iter().map(|&c| c as usize).collect(),
            None => (0..counts.len()).collect(),
        };
        classes
            .iter()
            .map(|&c| {
                counts
                    .get(c)
                    .map(|&n| split_sizes(n, self.pool.train_fraction))
            })
            .collect()
    }
}

/// (training part, test part) of a class with `n` pool images: at least
/// one image in each when there are two or more.
fn split_sizes(n: usize, fraction: f64) -> (usize, usize) {
    if n < 2 {
        return (n, 0);
    }
    let train = ((n as f64 * fraction).round() as usize).clamp(1, n - 1);
    (train, n - train)
}

impl Protocol for Performative {
    const NAME: &'static str = "performative";
    type Config = PerformativeConfig;
    const OBJECTIVE: &'static str = names::MEAN_ROUND_ACC;

    fn validate(config: &PerformativeConfig, checks: &Checks) -> Result<(), CoreError> {
        checks.data(&config.data, "data")?;
        checks.backbone(&config.backbone, "backbone", config.data.image_size())?;
        config.method.validate().map_err(method_key)?;
        if config.sign != 1.0 && config.sign != -1.0 {
            return Err(CoreError::config(
                "sign",
                format!("must be -1 (adversarial) or 1, got {}", config.sign),
            ));
        }
        if !(config.pool.train_fraction > 0.0 && config.pool.train_fraction < 1.0) {
            return Err(CoreError::config(
                "pool.train_fraction",
                "must be in (0, 1): both parts of the pool need images",
            ));
        }
        if config.eval_batch_size == 0 {
            return Err(CoreError::config("eval_batch_size", "must be >= 1"));
        }
        if let (Some(classes), Some(n)) = (&config.classes, config.data.num_classes()) {
            check_classes(classes, n, config.data.short_name())?;
        }
        if let Some(k) = config.class_count()
            && config.min_per_class * k > config.n_test.get()
        {
            return Err(CoreError::config(
                "min_per_class",
                format!(
                    "{} per class x {k} classes = {} test images, more than n_test = {}",
                    config.min_per_class,
                    config.min_per_class * k,
                    config.n_test
                ),
            ));
        }
        if let Some(parts) = config.part_sizes() {
            check_pool(config, &parts)?;
        }
        Ok(())
    }

    fn method(config: &PerformativeConfig) -> String {
        config.method.label()
    }

    fn inputs(config: &PerformativeConfig) -> Vec<PathBuf> {
        model_inputs(&config.data, &config.backbone, Some(&config.head))
    }

    fn run(config: &PerformativeConfig, env: &RunEnv) -> Result<Vec<MetricRow>, CoreError> {
        let progress = env.progress;
        let device = env.train_device(config.seed)?;
        let (data, classes) = env.load_dataset(&config.data, &config.classes)?;
        let k = classes.len();
        let normalization = config.normalization.resolve(data.normalization);
        let relabel = |l: u32| classes.iter().position(|&c| c == l).map(|p| p as u32);
        // The prior the deployed model was trained under: its training split's.
        let source_prior =
            class_proportions(data.train.labels.iter().filter_map(|&l| relabel(l)), k);
        let pool = Arc::new(match config.pool.split {
            PoolSplit::Test => data.test.select_classes(&relabel),
            PoolSplit::Train => data.train.select_classes(&relabel),
        });

        // The deployed model's outputs, once per pool image.
        let started = Instant::now();
        let cache = FeatureCache::default();
        let evaluator = Evaluator::new(&device, &cache, config.eval_batch_size, normalization);
        let model = env.build_classifier(&config.backbone, k, config.seed, &device)?;
        let head = load_head(model.head.clone(), &config.head)?;
        let (feats, probs) = evaluator.timed("deployed outputs", || {
            let feats = features(
                model.backbone(),
                &pool,
                evaluator.batch_size,
                normalization,
                &device,
            );
            let logits = head_logits(&head, &feats, &device);
            let probs = softmax_rows(&logits.values, k);
            (feats, probs)
        });
        progress.note(&format!(
            "deployed model's outputs on {} pool images in {:.1} s",
            pool.len(),
            started.elapsed().as_secs_f64()
        ));

        let parts = pool_parts(config, env, &pool, k)?;
        let deployed = Deployed {
            classes: k,
            probs,
            features: feats,
            head: head.clone(),
            labels: pool.labels.clone(),
            source_prior,
            pool_train: parts.train.iter().flatten().copied().collect(),
            source: Some(methods::DeployedSource {
                pool: Arc::clone(&pool),
                classifier: reusebench_core::model::Classifier::new(
                    model.backbone().clone(),
                    head.clone(),
                ),
                normalization,
                eval_batch_size: config.eval_batch_size,
                checkpoints: env.curves.checkpoints(),
            }),
        };
        let deployed_acc = deployed_accuracy(&deployed, &parts);

        let adapter = config
            .method
            .spec()
            .build(&deployed, config.seed, &device)?;
        // A paired trajectory follows the reference's deployments (the
        // method itself, when it is the reference).
        let paired = config.trajectory == Trajectory::Paired;
        let reference = match paired && config.reference != config.method {
            true => Some(
                config
                    .reference
                    .spec()
                    .build(&deployed, config.seed, &device)?,
            ),
            false => None,
        };
        let rng = env.rng(config.seed, Purpose::Rounds);
        let settings = Settings::of(config);
        let mut rows = evaluator.timed("rounds", || {
            // Each round's rows go live as the round ends.
            let live = |row: &MetricRow| env.curves.send(row);
            simulate(
                &settings,
                &deployed,
                &parts,
                (adapter, reference),
                rng,
                (progress, &live),
            )
        })?;
        rows.push(MetricRow::scalar(names::DEPLOYED_ACC, deployed_acc));
        rows.push(MetricRow::scalar(
            names::TRAJECTORY_PAIRED,
            f64::from(u8::from(paired)),
        ));
        rows.extend(evaluator.phase_rows());
        Ok(rows)
    }
}

/// Each class's pool images, shuffled and split into the training and
/// test parts, checked against what the rounds draw.
fn pool_parts(
    config: &PerformativeConfig,
    env: &RunEnv,
    pool: &ImageSet,
    k: usize,
) -> Result<Parts, CoreError> {
    let mut rng = env.rng(config.seed, Purpose::Pool);
    let (mut train, mut test) = (vec![Vec::new(); k], vec![Vec::new(); k]);
    for c in 0..k {
        let mut idx: Vec<usize> = (0..pool.len())
            .filter(|&i| pool.labels[i] as usize == c)
            .collect();
        idx.shuffle(&mut rng);
        let (n_train, _) = split_sizes(idx.len(), config.pool.train_fraction);
        test[c] = idx.split_off(n_train);
        train[c] = idx;
    }
    let sizes: Vec<(usize, usize)> = train
        .iter()
        .zip(&test)
        .map(|(a, b)| (a.len(), b.len()))
        .collect();
    check_pool(config, &sizes)?;
    Ok(Parts { train, test })
}

/// The deployed model's accuracy on the pool's whole test part.
fn deployed_accuracy(deployed: &Deployed, parts: &Parts) -> f64 {
    let test = parts.test.concat();
    let labels: Vec<u32> = test.iter().map(|&i| deployed.labels[i]).collect();
    accuracy_of(&deployed.probs_of(&test), &labels, deployed.classes).0
}

/// Every class's parts can give what the rounds draw: with `replace:
/// never`, any class may be asked for a whole round's sample (the
/// proportions can put nearly all the mass on one class), so every part
/// must hold n images; otherwise every part needs one image.
fn check_pool(config: &PerformativeConfig, parts: &[(usize, usize)]) -> Result<(), CoreError> {
    let smallest_train = parts.iter().map(|p| p.0).min().unwrap_or(0);
    let smallest_test = parts.iter().map(|p| p.1).min().unwrap_or(0);
    if smallest_train == 0 || smallest_test == 0 {
        return Err(CoreError::config(
            "pool",
            "a class has fewer than 2 pool images: both parts of the pool need one",
        ));
    }
    // What a round may ask of a part: all of it drawn without replacement
    // (exhaust), or all of it from one class (never); `auto` and `always`
    // resample.
    let total = |f: fn(&(usize, usize)) -> usize| parts.iter().map(f).sum::<usize>();
    for (key, n, train, what) in [
        ("n_train", config.n_train.get(), true, "training"),
        ("n_test", config.n_test.get(), false, "test"),
    ] {
        let (held, smallest) = match train {
            true => (total(|p| p.0), smallest_train),
            false => (total(|p| p.1), smallest_test),
        };
        let refusal = match config.replace {
            Replace::Exhaust if n > held => Some(format!(
                "{n} images per round, drawn without replacement, but the pool's {what} part holds {held}"
            )),
            Replace::Never if n > smallest => Some(format!(
                "{n} images per round, but the smallest class's {what} part of the pool holds {smallest}; with replace: never a round may ask one class for all {n} (use replace: auto to resample)"
            )),
            _ => None,
        };
        if let Some(message) = refusal {
            return Err(CoreError::config(key, message));
        }
    }
    let without_replacement = matches!(config.replace, Replace::Exhaust | Replace::Never);
    if without_replacement && config.min_per_class > smallest_test {
        return Err(CoreError::config(
            "min_per_class",
            format!(
                "{} per class, but the smallest class's test part holds {smallest_test}",
                config.min_per_class
            ),
        ));
    }
    Ok(())
}

/// What the round loop needs of a cell's config.
#[derive(Debug, Clone)]
pub struct Settings {
    pub method: String,
    pub rounds: usize,
    pub dirichlet_alpha: f64,
    pub temperature: f64,
    pub sign: f64,
    pub n_train: usize,
    pub n_test: usize,
    pub min_per_class: usize,
    pub replace: Replace,
}

impl Settings {
    fn of(c: &PerformativeConfig) -> Self {
        Self {
            method: c.method.label(),
            rounds: c.rounds.get(),
            dirichlet_alpha: c.dirichlet_alpha.get(),
            temperature: c.temperature.get(),
            sign: c.sign,
            n_train: c.n_train.get(),
            n_test: c.n_test.get(),
            min_per_class: c.min_per_class,
            replace: c.replace,
        }
    }
}

/// Each class's pool indices in the labelled training part and the test part.
pub struct Parts {
    pub train: Vec<Vec<usize>>,
    pub test: Vec<Vec<usize>>,
}

/// The rounds of one deployment: draw the round's samples from the current
/// proportions, let the method predict the test sample and learn from the
/// training sample, score it, and move the proportions.
pub fn simulate(
    settings: &Settings,
    deployed: &Deployed,
    parts: &Parts,
    (mut adapter, mut reference): (Box<dyn methods::Adapter>, Option<Box<dyn methods::Adapter>>),
    mut rng: rand_chacha::ChaCha8Rng,
    (progress, live): Watchers<'_>,
) -> Result<Vec<MetricRow>, CoreError> {
    let k = deployed.classes;
    let mut proportions = dirichlet(settings.dirichlet_alpha, k, &mut rng);
    let mut previous_acc: Option<Vec<f64>> = None;
    let mut reference_acc: Option<Vec<f64>> = None;
    let mut rows = Vec::new();
    let (mut sum_acc, mut sum_ce, mut sum_kl, mut n_kl, mut sum_seconds) =
        (0.0, 0.0, 0.0, 0usize, 0.0);
    let mut sum_tv = 0.0;
    progress.begin(
        &format!("{} · {} rounds", settings.method, settings.rounds),
        settings.rounds,
    );
    for round in 0..settings.rounds {
        let first_row = rows.len();
        let (test, train) = draw_round(settings, parts, &proportions, round, &mut rng)?;
        let test_labels: Vec<u32> = test.iter().map(|&i| deployed.labels[i]).collect();
        let train_prior = class_proportions(train.iter().map(|&i| deployed.labels[i]), k);
        // How far the drawn sample is from the proportions (a small pool
        // drawn without replacement flattens the shift).
        let realized = class_proportions(test_labels.iter().copied(), k);
        sum_tv += total_variation(&realized, &proportions);

        let tick = Instant::now();
        let prediction = adapter.predict(
            &RoundInput {
                round,
                test: &test,
                proportions: &proportions,
                previous_acc: previous_acc.as_deref(),
            },
            deployed,
        )?;
        let (acc, per_class) = accuracy_of(&prediction.probs, &test_labels, k);
        let ce = cross_entropy(&prediction.probs, &test_labels, k);
        adapter.observe(
            &Feedback {
                round,
                train: &train,
                train_prior: &train_prior,
                previous_acc: previous_acc.as_deref(),
            },
            deployed,
        )?;
        let seconds = tick.elapsed().as_secs_f64();

        sum_acc += acc;
        sum_ce += ce;
        sum_seconds += seconds;
        let at = Coords::new().with(names::ROUND, round);
        let n = (round + 1) as f64;
        let max_proportion = proportions.iter().copied().fold(0.0, f64::max);
        for (metric, value) in [
            (names::ROUND_ACC, acc),
            (names::ROUND_CE, ce),
            (names::CUMULATIVE_ACC, sum_acc / n),
            (names::CUMULATIVE_CE, sum_ce / n),
            (names::ROUND_MAX_PROPORTION, max_proportion),
        ] {
            rows.push(MetricRow::at(metric, value, at.clone()));
        }
        if let Some(prior) = &prediction.prior {
            let kl = kl_divergence(&proportions, prior);
            sum_kl += kl;
            n_kl += 1;
            rows.push(MetricRow::at(names::ROUND_KL_PRIOR, kl, at.clone()));
        }
        rows.push(MetricRow::at(names::ROUND_SECONDS, seconds, at));
        rows[first_row..].iter().for_each(live);
        progress.batch(acc as f32);

        // The reference sees the same round; its accuracy moves the shift.
        let driver = match &mut reference {
            Some(r) => {
                let round_data = RoundData {
                    round,
                    test: &test,
                    test_labels: &test_labels,
                    train: &train,
                    train_prior: &train_prior,
                    proportions: &proportions,
                };
                let own =
                    reference_round(r.as_mut(), &round_data, reference_acc.as_deref(), deployed)?;
                reference_acc = Some(fill_missing(&own));
                own
            }
            None => per_class.clone(),
        };
        proportions = next_proportions(&driver, settings.temperature, settings.sign);
        previous_acc = Some(fill_missing(&per_class));
    }
    progress.end();
    let rounds = settings.rounds as f64;
    rows.push(MetricRow::scalar(names::MEAN_ROUND_ACC, sum_acc / rounds));
    rows.push(MetricRow::scalar(names::MEAN_ROUND_CE, sum_ce / rounds));
    if n_kl > 0 {
        rows.push(MetricRow::scalar(
            names::MEAN_ROUND_KL_PRIOR,
            sum_kl / n_kl as f64,
        ));
    }
    rows.push(MetricRow::scalar(
        names::MEAN_ROUND_SECONDS,
        sum_seconds / rounds,
    ));
    rows.push(MetricRow::scalar(names::MEAN_SAMPLE_TV, sum_tv / rounds));
    Ok(rows)
}

/// A round's test sample (with the per-class minimum), then its training
/// sample, drawn from the pool's parts by the current proportions.
fn draw_round(
    settings: &Settings,
    parts: &Parts,
    proportions: &[f64],
    round: usize,
    rng: &mut rand_chacha::ChaCha8Rng,
) -> Result<(Vec<usize>, Vec<usize>), CoreError> {
    let mut draw_parts = |parts: &[Vec<usize>], n: usize, min: usize| {
        if settings.replace == Replace::Exhaust {
            return draw_exhaust(parts, n, proportions, min, rng)
                .map_err(|m| CoreError::config("n_test", format!("round {round}: {m}")));
        }
        let counts = allocate(n, proportions, min);
        let mut out = Vec::with_capacity(n);
        for (c, &count) in counts.iter().enumerate() {
            out.extend(draw(&parts[c], count, settings.replace, rng).map_err(|m| {
                CoreError::config("replace", format!("round {round}, class {c}: {m}"))
            })?);
        }
        Ok::<_, CoreError>(out)
    };
    let test = draw_parts(&parts.test, settings.n_test, settings.min_per_class)?;
    let train = draw_parts(&parts.train, settings.n_train, 0)?;
    Ok((test, train))
}

/// ½ Σ |p − q|.
fn total_variation(p: &[f64], q: &[f64]) -> f64 {
    0.5 * p.iter().zip(q).map(|(a, b)| (a - b).abs()).sum::<f64>()
}

/// Who watches the rounds: the progress display, and where each round's
/// rows go as the round ends (a cell's live rows).
pub type Watchers<'a> = (&'a dyn reusebench_core::Progress, &'a dyn Fn(&MetricRow));

/// One round's samples, as the methods see them.
struct RoundData<'a> {
    round: usize,
    test: &'a [usize],
    test_labels: &'a [u32],
    train: &'a [usize],
    train_prior: &'a [f64],
    proportions: &'a [f64],
}

/// The reference method's round on a paired trajectory: it predicts and
/// learns as the scored method does; its per-class accuracy is returned.
fn reference_round(
    r: &mut dyn methods::Adapter,
    d: &RoundData,
    previous_acc: Option<&[f64]>,
    deployed: &Deployed,
) -> Result<Vec<Option<f64>>, CoreError> {
    let input = RoundInput {
        round: d.round,
        test: d.test,
        proportions: d.proportions,
        previous_acc,
    };
    let (_, own) = accuracy_of(
        &r.predict(&input, deployed)?.probs,
        d.test_labels,
        deployed.classes,
    );
    let feedback = Feedback {
        round: d.round,
        train: d.train,
        train_prior: d.train_prior,
        previous_acc,
    };
    r.observe(&feedback, deployed)?;
    Ok(own)
}

/// Accuracy (%) of the arg-max of `probs`, and each class's accuracy as a
/// fraction (`None` for a class with no image).
fn accuracy_of(probs: &[f64], labels: &[u32], k: usize) -> (f64, Vec<Option<f64>>) {
    let predictions = crate::label_shift::hard_predictions(probs, k);
    let (mut hit, mut seen) = (vec![0usize; k], vec![0usize; k]);
    for (&p, &y) in predictions.iter().zip(labels) {
        seen[y as usize] += 1;
        if p == y as usize {
            hit[y as usize] += 1;
        }
    }
    let total: usize = hit.iter().sum();
    let acc = 100.0 * total as f64 / labels.len().max(1) as f64;
    let per_class = hit
        .iter()
        .zip(&seen)
        .map(|(&h, &s)| (s > 0).then(|| h as f64 / s as f64))
        .collect();
    (acc, per_class)
}

/// Mean −log p(y|x) (nats), probabilities floored at 1e-12.
fn cross_entropy(probs: &[f64], labels: &[u32], k: usize) -> f64 {
    let sum: f64 = probs
        .chunks(k)
        .zip(labels)
        .map(|(row, &y)| -row[y as usize].max(1e-12).ln())
        .sum();
    sum / labels.len().max(1) as f64
}
