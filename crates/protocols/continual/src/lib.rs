//! `continual`: a class-incremental task sequence learned by one method,
//! from a pretrained checkpoint or from scratch. After every task: the
//! class-IL and task-IL accuracy on every task seen, and kNN accuracy of the
//! backbone's features on every task (seen or not).

pub mod adaptation;
pub mod methods;

use std::borrow::Cow;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use burn::tensor::Device;
use reusebench_data::fmow::REGIONS;
use reusebench_data::{
    Augment, DatasetSpec, DomainTasks, ImageSet, Normalization, NormalizationChoice, TaskSequence,
    TaskSplit,
};
use serde::{Deserialize, Serialize};

use adaptation::{AdaptationConfig, adapt};
use methods::{MethodConfig, TaskContext};
use reusebench_core::backbone::BackboneConfig;
use reusebench_core::feature_cache::FeatureCache;
use reusebench_core::features::{ModelKey, Rows, head_logits, logits, recompute_batch_norm};
use reusebench_core::metrics::names::SettingNames;
use reusebench_core::metrics::{
    AccuracyMatrix, Coord, Coords, KnnConfig, MetricRow, forgetting_over_all_rows,
    gem_forward_transfer, masked_accuracy, names,
};
use reusebench_core::model::Classifier;
use reusebench_core::protocol::{
    Checks, Protocol, RunEnv, check_classes, default_batch_size, default_eval_batch_size,
    model_inputs,
};
use reusebench_core::{CoreError, Evaluator};

/// The protocol, as the runner's registry names it.
pub struct Continual;

/// Whose seed orders the classes of a class-incremental sequence.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ClassOrder {
    /// As listed (or by `class_order_seed`): one order for every seed.
    #[default]
    Listed,
    /// Permuted with the cell's seed.
    Seeded,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ContinualConfig {
    pub seed: u64,
    pub data: DatasetSpec,
    /// Original class labels that make up the sequence; all when absent.
    #[serde(default)]
    pub classes: Option<Vec<u32>>,
    /// Class-incremental tasks of this many classes each...
    #[serde(default)]
    pub classes_per_task: Option<usize>,
    /// ...or domain-incremental tasks by year range or region (FMoW).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub domains: Option<DomainTasks>,
    /// Shuffle the class order with this seed; natural order when absent.
    #[serde(default)]
    pub class_order_seed: Option<u64>,
    /// `listed` (the default: `classes` in order, or shuffled by
    /// `class_order_seed`, the same for every seed) or `seeded` (shuffled
    /// with the cell's own seed, so the seeds vary the class order too:
    /// Mammoth's `--permute_classes`).
    #[serde(default)]
    pub class_order: ClassOrder,
    #[serde(default)]
    pub backbone: BackboneConfig,
    pub method: MethodConfig,
    #[serde(default = "default_batch_size")]
    pub batch_size: usize,
    #[serde(default = "default_eval_batch_size")]
    pub eval_batch_size: usize,
    /// Which statistics normalise the images: `dataset` (default),
    /// `imagenet` (for ImageNet-pretrained weights) or `{custom: {mean, std}}`.
    #[serde(default)]
    pub normalization: NormalizationChoice,
    /// Training augmentation; the dataset's default when absent (crop and
    /// flip, none for FMoW, as WILDS' ERM).
    #[serde(default)]
    pub augment: Option<Augment>,
    /// kNN evaluation of the backbone features; `null` turns it off.
    #[serde(default = "default_knn")]
    pub knn: Option<KnnConfig>,
    /// Adaptation evaluation after the sequence (see `adaptation.rs`); off when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub adaptation: Option<AdaptationConfig>,
}

fn default_knn() -> Option<KnnConfig> {
    Some(KnnConfig::default())
}

impl Protocol for Continual {
    const NAME: &'static str = "continual";
    type Config = ContinualConfig;
    const OBJECTIVE: &'static str = names::AVG_ACC_CLASS_IL;
    const TRIAL_SKIPS: &'static [(&'static str, &'static str)] =
        &[("knn", "knn_"), ("adaptation", "adapt_")];

    fn validate(config: &ContinualConfig, checks: &Checks) -> Result<(), CoreError> {
        checks.data(&config.data, "data")?;
        config.method.validate()?;
        checks.backbone(&config.backbone, "backbone", config.data.image_size())?;
        if config.batch_size < 2 {
            return Err(CoreError::config("batch_size", "must be >= 2"));
        }
        if let Some(adaptation) = &config.adaptation {
            adaptation.check()?;
            if let Some(down) = &adaptation.downstream {
                checks.data(&down.data, "adaptation.downstream.data")?;
                if let (Some(classes), Some(n)) = (&down.classes, down.data.num_classes()) {
                    check_classes(classes, n, down.data.short_name()).map_err(|e| {
                        reusebench_core::protocol::prefix_key(e, "adaptation.downstream")
                    })?;
                }
            }
        }
        if config.class_order == ClassOrder::Seeded && config.class_order_seed.is_some() {
            return Err(CoreError::config(
                "class_order",
                "`seeded` orders the classes by the cell's seed: leave class_order_seed out",
            ));
        }
        // The class count comes from the dataset spec (or a cheap read of
        // its metadata), so a split that cannot work fails here, not after
        // the pretrain cell before it has run.
        let classes: Option<usize> = match (&config.classes, config.data.num_classes()) {
            (Some(list), Some(n)) => {
                check_classes(list, n, config.data.short_name())?;
                Some(list.len())
            }
            (Some(list), None) => Some(list.len()),
            (None, n) => n,
        };
        match (&config.classes_per_task, &config.domains) {
            (Some(0), None) => {
                return Err(CoreError::config("classes_per_task", "must be >= 1"));
            }
            (Some(per_task), None) => {
                if let Some(n) = classes
                    && !n.is_multiple_of(*per_task)
                {
                    return Err(CoreError::config(
                        "classes_per_task",
                        format!(
                            "{n} classes cannot be split into tasks of {per_task} ({n} is not a multiple of {per_task})"
                        ),
                    ));
                }
            }
            (None, Some(d)) => d
                .validate()
                .map_err(|e| CoreError::config("domains", e.to_string()))?,
            _ => {
                return Err(CoreError::config(
                    "classes_per_task",
                    "give exactly one of classes_per_task (class-incremental) and domains \
                     (domain-incremental)",
                ));
            }
        }
        Ok(())
    }

    fn method(config: &ContinualConfig) -> String {
        config.method.label()
    }

    fn inputs(config: &ContinualConfig) -> Vec<PathBuf> {
        let mut v = model_inputs(&config.data, &config.backbone, None);
        if let Some(down) = config
            .adaptation
            .as_ref()
            .and_then(|a| a.downstream.as_ref())
        {
            v.extend(down.data.required_paths());
        }
        v
    }

    /// One cell: prepare the task sequence, then per task learn and evaluate,
    /// then the sequence's summaries, the random reference and the adaptation.
    /// Rows come out in that order.
    fn run(config: &ContinualConfig, env: &RunEnv) -> Result<Vec<MetricRow>, CoreError> {
        let started = Instant::now();
        let device = env.train_device(config.seed)?;
        let seq = Sequence::prepare(config, env)?;
        let mut model = env.build_classifier(
            &config.backbone,
            seq.split.num_classes(),
            config.seed,
            &device,
        )?;
        let mut method = config.method.build();
        let cache = FeatureCache::default();
        let evaluator = Evaluator::new(&device, &cache, seq.eval_batch_size, seq.normalization);
        let mut eval = Evaluation::default();
        evaluator.add_since("data and model", started);

        let shared = seq.context(config, env, &device, &cache);
        let downstream = config
            .adaptation
            .as_ref()
            .and_then(|a| a.downstream.as_ref())
            .map(|d| DownstreamTask::load(d, env))
            .transpose()?;
        // One adaptation per value of a `shots` list, after the same training.
        let variants = config
            .adaptation
            .as_ref()
            .map(AdaptationConfig::variants)
            .unwrap_or_default();
        // Adaptation after the tasks before the last (`every_task`); the
        // last one's comes with the sequence's summaries.
        let mut adapted_during: Vec<AdaptedDuring> =
            variants.iter().map(|_| AdaptedDuring::default()).collect();
        for t in 0..seq.tasks {
            let ctx = TaskContext {
                task: t,
                train: Arc::clone(&seq.train[t]),
                history: &seq.train[..=t],
                old_classes: seq.split.old_classes(t),
                seen_classes: seq.split.label_range(t).end,
                ..shared
            };
            model = evaluator.timed("train", || method.learn_task(model, &ctx))?;
            // The model each task is evaluated with: the current one, or the
            // task's own where the method keeps one per task (lifelong
            // side-tuning).
            let models: Vec<Classifier> = (0..seq.tasks)
                .map(|j| method.task_model(j).unwrap_or_else(|| model.clone()))
                .collect();
            let before = eval.rows.len();
            eval.after_task(t, &models, &seq, config, &evaluator);
            // The task's accuracy-matrix rows go live as the task ends.
            for row in &eval.rows[before..] {
                env.curves.send(row);
            }
            env.progress.note(&eval.progress_line(t, &seq));
            if t + 1 < seq.tasks && variants.iter().any(|(_, a)| a.every_task) {
                // One fingerprint of the weights for every shots value.
                let key = ModelKey::of(&model);
                for ((shots, a), during) in variants.iter().zip(&mut adapted_during) {
                    if a.every_task {
                        evaluator.timed("adaptation", || {
                            let at = (t, &key, *shots);
                            during.after_task(a, &model, at, &seq, &shared, downstream.as_ref())
                        })?;
                    }
                }
            }
        }

        let mut rows = eval.summary_rows(&seq);
        // The final model's adaptations before the reference's, so that a
        // cell resumed after the reference was stored keeps its stages'
        // checkpoint slots.
        let finals = variants
            .iter()
            .map(|(shots, a)| {
                evaluator.timed("adaptation", || {
                    let start = Start::Final(&model, ModelKey::of(&model));
                    adapt_to_each(a, start, (&seq, &shared), downstream.as_ref(), *shots)
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        let reference = evaluator.timed("random reference", || {
            ReferenceScores::of(config, env, (&seq, &shared), &variants, downstream.as_ref())
        })?;
        rows.extend(reference.forward_transfer_rows(&seq, &eval));
        if config.knn.is_some() {
            rows.extend(eval.knn_summary_rows());
        }
        for ((((shots, adaptation), during), adapted), scratch) in variants
            .iter()
            .zip(adapted_during)
            .zip(finals)
            .zip(&reference.adapted)
        {
            rows.extend(adaptation_rows(
                adaptation, &seq, during, *shots, &adapted, scratch,
            ));
        }
        let stats = cache.stats();
        env.progress.note(&format!(
            "feature cache: {} hit(s), {} miss(es)",
            stats.hits, stats.misses
        ));
        env.progress.note(&evaluator.summary());
        rows.extend(evaluator.phase_rows());
        Ok(rows)
    }
}

/// The cell's task sequence: every task's training and test images, and
/// what evaluation needs to know of the setting.
struct Sequence {
    split: TaskSequence,
    tasks: usize,
    train: Vec<Arc<ImageSet>>,
    test: Vec<Arc<ImageSet>>,
    normalization: Normalization,
    eval_batch_size: usize,
    /// `class_il` or `domain_il`.
    setting: &'static str,
    names: SettingNames,
    /// The dataset's group names (an image folder's groups file), if any.
    group_names: Vec<String>,
}

impl Sequence {
    fn prepare(config: &ContinualConfig, env: &RunEnv) -> Result<Self, CoreError> {
        let (data, classes) = env.load_dataset(&config.data, &config.classes)?;
        let split = match (&config.classes_per_task, &config.domains) {
            (Some(n), _) => {
                let permute = match config.class_order {
                    ClassOrder::Listed => config.class_order_seed,
                    ClassOrder::Seeded => Some(config.seed),
                };
                TaskSequence::Classes(TaskSplit::new(&classes, *n, permute)?)
            }
            (None, Some(d)) => TaskSequence::Domains {
                tasks: d.clone(),
                classes: classes.clone(),
            },
            (None, None) => unreachable!("validate() requires one"),
        };
        let tasks = split.num_tasks();
        let mut train: Vec<Arc<ImageSet>> = Vec::new();
        let mut test: Vec<Arc<ImageSet>> = Vec::new();
        for t in 0..tasks {
            train.push(Arc::new(split.task_images(&data.train, t)?));
            test.push(Arc::new(split.task_images(&data.test, t)?));
        }
        if let Some(t) = (0..tasks).find(|&t| train[t].is_empty() || test[t].is_empty()) {
            return Err(empty_task(config, &split, t, &train[t], &test[t]));
        }
        let setting = split.setting();
        Ok(Self {
            tasks,
            train,
            test,
            normalization: config.normalization.resolve(data.normalization),
            eval_batch_size: config.eval_batch_size,
            setting,
            names: names::setting(setting).expect("every setting has names"),
            split,
            group_names: data.group_names.clone(),
        })
    }

    fn class_il(&self) -> bool {
        self.setting == "class_il"
    }

    /// What every task's context shares; each task sets its own data.
    fn context<'a>(
        &'a self,
        config: &ContinualConfig,
        env: &'a RunEnv,
        device: &'a Device,
        cache: &'a FeatureCache,
    ) -> TaskContext<'a> {
        TaskContext {
            task: 0,
            num_tasks: self.tasks,
            train: Arc::clone(&self.train[0]),
            history: &self.train[..1],
            old_classes: 0,
            seen_classes: self.split.label_range(0).end,
            num_classes: self.split.num_classes(),
            batch_size: config.batch_size,
            eval_batch_size: self.eval_batch_size,
            augment: config.augment.unwrap_or(config.data.default_augment()),
            normalization: self.normalization,
            seed: config.seed,
            device,
            features: cache,
            progress: env.progress,
            curves: &env.curves,
        }
    }
}

fn empty_task(
    config: &ContinualConfig,
    split: &TaskSequence,
    t: usize,
    train: &ImageSet,
    test: &ImageSet,
) -> CoreError {
    CoreError::config(
        "",
        format!(
            "task {t} ({}) has {} training and {} test images; every task needs both{}",
            match &config.domains {
                Some(d) => d.describe(t),
                None => format!("classes {:?}", split.label_range(t)),
            },
            train.len(),
            test.len(),
            if config.domains.is_some() {
                " (year tasks on FMoW's official split have no test images before 2016: use split: {kind: random, ...})"
            } else {
                ""
            }
        ),
    )
}

/// What the evaluations after each task have found so far.
#[derive(Default)]
struct Evaluation {
    rows: Vec<MetricRow>,
    class_il: AccuracyMatrix,
    task_il: AccuracyMatrix,
    knn_seen: AccuracyMatrix,
    /// Every task after every task (UCL's kNN forgetting needs the unseen ones too).
    knn_all: Vec<Vec<f64>>,
    /// The final model's predictions on every task's test images.
    final_predictions: Vec<Vec<u32>>,
    /// R[t][t + 1], class-IL (or domain-IL) and task-IL.
    before: (Vec<f64>, Vec<f64>),
}

impl Evaluation {
    /// Accuracy matrices and kNN after task `t`, `models[j]` evaluating task j.
    fn after_task(
        &mut self,
        t: usize,
        models: &[Classifier],
        seq: &Sequence,
        config: &ContinualConfig,
        evaluator: &Evaluator,
    ) {
        let keys: Vec<ModelKey> = models.iter().map(ModelKey::of).collect();
        // Each test set passes through the backbone once: its features feed
        // both the head (accuracy matrix) and the kNN queries.
        // (The next task too: GEM's forward transfer needs R[t][t + 1].)
        let evaluated = if config.knn.is_some() {
            seq.tasks
        } else {
            (t + 2).min(seq.tasks)
        };
        let test_features: Vec<Arc<Rows>> = seq.test[..evaluated]
            .iter()
            .enumerate()
            .map(|(j, set)| evaluator.features(&models[j], &keys[j], set))
            .collect();
        evaluator.timed("evaluation", || {
            self.accuracy_rows(t, models, &test_features, seq, evaluator.device)
        });
        if let Some(knn) = &config.knn {
            let mut knn_row = Vec::new();
            let mut knn_full_row = Vec::new();
            for j in 0..seq.tasks {
                let (train, test) = (&seq.train[j], &seq.test[j]);
                let queries = &test_features[j];
                let acc = evaluator.knn(&models[j], &keys[j], train, queries, &test.labels, knn);
                self.rows.push(MetricRow::entry(names::KNN_ACC, t, j, acc));
                knn_full_row.push(acc);
                if j <= t {
                    knn_row.push(acc);
                }
            }
            self.knn_seen.push_row(knn_row);
            self.knn_all.push(knn_full_row);
        }
    }

    /// Class-IL: argmax over every class seen so far; task-IL: over the
    /// task's own classes. Domain-IL: every task has every class, so one
    /// accuracy (named by the setting), no task-IL.
    fn accuracy_rows(
        &mut self,
        t: usize,
        models: &[Classifier],
        test_features: &[Arc<Rows>],
        seq: &Sequence,
        device: &Device,
    ) {
        let (split, test) = (&seq.split, &seq.test);
        let seen = split.label_range(t).end;
        let (mut cil_row, mut til_row) = (Vec::new(), Vec::new());
        for j in 0..=t {
            let out = head_logits(&models[j].head, &test_features[j], device);
            let cil = masked_accuracy(&out.values, out.dim, &test[j].labels, 0..seen);
            self.rows
                .push(MetricRow::entry(seq.names.matrix, t, j, cil));
            cil_row.push(cil);
            if seq.class_il() {
                let til =
                    masked_accuracy(&out.values, out.dim, &test[j].labels, split.label_range(j));
                self.rows
                    .push(MetricRow::entry(names::ACC_TASK_IL, t, j, til));
                til_row.push(til);
            }
            if t + 1 == seq.tasks {
                self.final_predictions
                    .push(argmax_rows(&out.values, out.dim, 0..seen));
            }
        }
        if t + 1 < seq.tasks {
            let next = t + 1;
            let out = head_logits(&models[next].head, &test_features[next], device);
            let labels = &test[next].labels;
            let cil = masked_accuracy(&out.values, out.dim, labels, 0..split.label_range(next).end);
            self.rows
                .push(MetricRow::entry(seq.names.before, t, next, cil));
            self.before.0.push(cil);
            if seq.class_il() {
                let til = masked_accuracy(&out.values, out.dim, labels, split.label_range(next));
                self.rows
                    .push(MetricRow::entry(names::ACC_TASK_IL_BEFORE, t, next, til));
                self.before.1.push(til);
            }
        }
        self.class_il.push_row(cil_row);
        if !til_row.is_empty() {
            self.task_il.push_row(til_row);
        }
    }

    fn progress_line(&self, t: usize, seq: &Sequence) -> String {
        format!(
            "after task {}/{}: {} {:.1}%{}",
            t + 1,
            seq.tasks,
            seq.setting,
            self.class_il.average_accuracy(),
            if seq.class_il() {
                format!(", task-IL {:.1}%", self.task_il.average_accuracy())
            } else {
                String::new()
            }
        )
    }

    /// Every row so far, then the sequence's summaries and group accuracies.
    fn summary_rows(&mut self, seq: &Sequence) -> Vec<MetricRow> {
        type Summary = fn(&AccuracyMatrix) -> f64;
        let (own, task) = (&seq.names, names::setting("task_il").expect("a setting"));
        let summaries: [(&str, &str, Summary); 4] = [
            (own.avg, task.avg, AccuracyMatrix::average_accuracy),
            (own.forgetting, task.forgetting, AccuracyMatrix::forgetting),
            (
                own.forgetting_mammoth,
                task.forgetting_mammoth,
                AccuracyMatrix::forgetting_mammoth,
            ),
            (own.bwt, task.bwt, AccuracyMatrix::backward_transfer),
        ];
        let mut rows = std::mem::take(&mut self.rows);
        for (metric, task_metric, summary) in summaries {
            rows.push(MetricRow::scalar(metric, summary(&self.class_il)));
            if seq.class_il() {
                rows.push(MetricRow::scalar(task_metric, summary(&self.task_il)));
            }
        }
        rows.extend(group_accuracy(&seq.test, &self.final_predictions));
        // A dataset's own groups (an image folder's groups file): over every
        // task's test images together.
        if seq.test.iter().all(|s| s.groups.len() == s.len()) && !seq.group_names.is_empty() {
            let labels: Vec<u32> = seq
                .test
                .iter()
                .flat_map(|s| s.labels.iter().copied())
                .collect();
            let groups: Vec<u16> = seq
                .test
                .iter()
                .flat_map(|s| s.groups.iter().copied())
                .collect();
            rows.extend(reusebench_core::metrics::group_rows_of(
                &self.final_predictions.concat(),
                &labels,
                &groups,
                &seq.group_names,
            ));
        }
        rows
    }

    fn knn_summary_rows(&self) -> Vec<MetricRow> {
        vec![
            MetricRow::scalar(names::KNN_ACC, self.knn_seen.average_accuracy()),
            MetricRow::scalar(
                names::KNN_FORGETTING,
                forgetting_over_all_rows(&self.knn_all),
            ),
            MetricRow::scalar(names::KNN_FORGETTING_CHAUDHRY, self.knn_seen.forgetting()),
        ]
    }
}

/// The random reference: same architecture, random weights (the cell's
/// seed), no checkpoint; per task, its batch-norm statistics recomputed on
/// that task's training data before it is used.
struct RandomReference {
    model: Classifier,
    batch_size: usize,
}

impl RandomReference {
    fn build(
        config: &ContinualConfig,
        env: &RunEnv,
        seq: &Sequence,
        device: &Device,
    ) -> Result<Self, CoreError> {
        let random_config = BackboneConfig {
            checkpoint: None,
            weights: None,
            weights_key: None,
            keep_head: false,
            allow_partial: false,
            ..config.backbone.clone()
        };
        Ok(Self {
            model: env.build_classifier(
                &random_config,
                seq.split.num_classes(),
                config.seed,
                device,
            )?,
            batch_size: config.batch_size,
        })
    }

    /// The reference with task `j`'s batch-norm statistics. Made anew at
    /// each use, never kept: burn's RunningState is shared between clones
    /// (an Arc), so every recompute rewrites the statistics of the model
    /// and of every earlier copy. Each copy is used right after its
    /// recompute (forward transfer, then again for the adaptation's
    /// reference: the recompute runs twice per task, a cheap pass).
    fn on_task(&self, j: usize, seq: &Sequence, device: &Device) -> Classifier {
        self.on_set(&seq.train[j], seq, device)
    }

    /// The reference with its batch-norm statistics from `set`.
    fn on_set(&self, set: &Arc<ImageSet>, seq: &Sequence, device: &Device) -> Classifier {
        let backbone = recompute_batch_norm(
            self.model.backbone().clone(),
            set,
            self.batch_size,
            seq.normalization,
            device,
        );
        Classifier::new(backbone, self.model.head.clone())
    }

    /// Its class-IL and task-IL accuracy on every task after the first
    /// (task-IL empty outside class-IL).
    fn accuracies(&self, seq: &Sequence, device: &Device) -> (Vec<f64>, Vec<f64>) {
        let split = &seq.split;
        let (mut cil, mut til) = (Vec::new(), Vec::new());
        for j in 1..seq.tasks {
            let model = self.on_task(j, seq, device);
            let out = logits(
                &model,
                &seq.test[j],
                seq.eval_batch_size,
                seq.normalization,
                device,
            );
            let labels = &seq.test[j].labels;
            cil.push(masked_accuracy(
                &out.values,
                out.dim,
                labels,
                0..split.label_range(j).end,
            ));
            if seq.class_il() {
                til.push(masked_accuracy(
                    &out.values,
                    out.dim,
                    labels,
                    split.label_range(j),
                ));
            }
        }
        (cil, til)
    }
}

/// What the random reference scores. It depends on the config less the
/// method, so a grid computes it once per seed and setting: the first
/// cell that needs it stores it under `RESULTS/shared` (keyed by that
/// config, the build, the inputs and the held-out split), the others read
/// it, and their rows are the same as if they had computed it.
#[derive(Serialize, Deserialize)]
struct ReferenceScores {
    /// Class-IL accuracy on each task after the first.
    cil: Vec<f64>,
    /// Task-IL accuracy on each task after the first (class-IL only).
    til: Vec<f64>,
    /// Per adaptation variant (`shots` value), in the config's order.
    adapted: Vec<Adapted>,
    /// The curves of its adaptation stages, replayed into a cell that reads it.
    curves: Vec<MetricRow>,
}

/// Accuracies after adapting a model to each task alone and to the
/// downstream task.
#[derive(Debug, Default, Serialize, Deserialize)]
struct Adapted {
    tasks: Vec<f64>,
    downstream: Option<f64>,
}

impl ReferenceScores {
    fn of(
        config: &ContinualConfig,
        env: &RunEnv,
        (seq, shared): (&Sequence, &TaskContext),
        variants: &[(Option<usize>, AdaptationConfig)],
        downstream: Option<&DownstreamTask>,
    ) -> Result<Self, CoreError> {
        let compute = || -> Result<Self, CoreError> {
            let start = env.curves.len();
            let random = RandomReference::build(config, env, seq, shared.device)?;
            let (cil, til) = random.accuracies(seq, shared.device);
            let adapted = variants
                .iter()
                .map(|(shots, a)| {
                    adapt_to_each(
                        a,
                        Start::Scratch(&random),
                        (seq, shared),
                        downstream,
                        *shots,
                    )
                })
                .collect::<Result<_, _>>()?;
            let curves = env.curves.since(start);
            Ok(Self {
                cil,
                til,
                adapted,
                curves,
            })
        };
        let Some(store) = &env.shared else {
            return compute();
        };
        let mut key = serde_json::to_value(config).expect("a config serialises");
        if let Some(map) = key.as_object_mut() {
            map.remove("method");
        }
        let (scores, read) = store.get_or_compute("random-reference", &key, compute)?;
        if read {
            for row in &scores.curves {
                env.curves.push(row.clone());
            }
            env.progress
                .note("random reference: read from the grid's shared results");
        }
        Ok(scores)
    }

    /// The reference's accuracy on every task after the first, and GEM's
    /// forward transfer against the accuracies before each task.
    fn forward_transfer_rows(&self, seq: &Sequence, eval: &Evaluation) -> Vec<MetricRow> {
        let mut rows = Vec::new();
        if seq.tasks <= 1 {
            return rows;
        }
        for (j, &cil) in (1..seq.tasks).zip(&self.cil) {
            let at = Coords::new().with(names::TASK, j);
            rows.push(MetricRow::at(seq.names.random, cil, at.clone()));
            if let Some(&til) = self.til.get(j - 1) {
                rows.push(MetricRow::at(names::ACC_TASK_IL_RANDOM, til, at));
            }
        }
        rows.push(MetricRow::scalar(
            seq.names.fwt,
            gem_forward_transfer(&eval.before.0, &self.cil),
        ));
        if seq.class_il() {
            rows.push(MetricRow::scalar(
                names::FWT_TASK_IL,
                gem_forward_transfer(&eval.before.1, &self.til),
            ));
        }
        rows
    }
}

/// A task alone, as adaptation trains and tests on it: labels from 0,
/// training images capped at the shots.
fn task_alone(
    adaptation: &AdaptationConfig,
    seq: &Sequence,
    j: usize,
) -> (Arc<ImageSet>, Arc<ImageSet>) {
    let start = seq.split.label_range(j).start as u32;
    let renumber = |set: &ImageSet| set.select_classes(&|l| l.checked_sub(start));
    let train = renumber(&seq.train[j]);
    let train = match adaptation.shots() {
        Some(n) => train.cap_per_class(n),
        None => train,
    };
    (Arc::new(train), Arc::new(renumber(&seq.test[j])))
}

/// The downstream task: its training and test images, classes renumbered
/// from 0 (the shots are taken when adapting).
struct DownstreamTask {
    train: Arc<ImageSet>,
    test: Arc<ImageSet>,
    classes: usize,
}

impl DownstreamTask {
    fn load(down: &adaptation::Downstream, env: &RunEnv) -> Result<Self, CoreError> {
        let (data, classes) = env.load_dataset(&down.data, &down.classes)?;
        let relabel = |l: u32| classes.iter().position(|&c| c == l).map(|p| p as u32);
        Ok(Self {
            train: Arc::new(data.train.select_classes(&relabel)),
            test: Arc::new(data.test.select_classes(&relabel)),
            classes: classes.len(),
        })
    }

    /// The training images adaptation uses: the first `shots` a class.
    fn train(&self, adaptation: &AdaptationConfig) -> Arc<ImageSet> {
        match adaptation.shots() {
            Some(n) => Arc::new(self.train.cap_per_class(n)),
            None => Arc::clone(&self.train),
        }
    }

    /// `model` (whose fingerprint is `key`) adapted to this task: its test
    /// accuracy.
    fn adapt(
        &self,
        adaptation: &AdaptationConfig,
        (model, key): (&Classifier, &ModelKey),
        shared: &TaskContext,
        label: &str,
        coords: Coords,
    ) -> Result<f64, CoreError> {
        let ctx = alone(shared, 0, self.train(adaptation), self.classes);
        adapt(adaptation, model, key, &self.test, label, coords, &ctx)
    }
}

/// `shared` narrowed to one task learned alone: `train`, labels from 0 over
/// `classes` classes, no history.
fn alone<'a>(
    shared: &TaskContext<'a>,
    task: usize,
    train: Arc<ImageSet>,
    classes: usize,
) -> TaskContext<'a> {
    TaskContext {
        task,
        train,
        history: &[],
        old_classes: 0,
        seen_classes: classes,
        num_classes: classes,
        ..*shared
    }
}

/// An adaptation's curve coordinates: the task adapted to, where the
/// model came from (`start`), and the `shots` value of a list.
fn adapt_coords(task: impl Into<Coord>, start: &str, shots: Option<usize>) -> Coords {
    let coords = Coords::new()
        .with(names::TASK, task)
        .with(names::START, start)
        .with(names::STAGE, "adaptation");
    match shots {
        Some(n) => coords.with(names::SHOTS, n),
        None => coords,
    }
}

/// Adaptation accuracies gathered after the tasks before the last.
#[derive(Default)]
struct AdaptedDuring {
    /// (after_task, task, accuracy).
    seen: Vec<(usize, usize, f64)>,
    /// (after_task, accuracy).
    downstream: Vec<(usize, f64)>,
}

impl AdaptedDuring {
    /// The current model (fingerprint `key`), after task `after`, adapted
    /// to every task so far and to the downstream task.
    fn after_task(
        &mut self,
        adaptation: &AdaptationConfig,
        model: &Classifier,
        (after, key, shots): (usize, &ModelKey, Option<usize>),
        seq: &Sequence,
        shared: &TaskContext,
        downstream: Option<&DownstreamTask>,
    ) -> Result<(), CoreError> {
        let start = format!("after task {after}");
        for j in 0..=after {
            let (train, test) = task_alone(adaptation, seq, j);
            let ctx = alone(shared, j, train, seq.split.label_range(j).len());
            let coords = adapt_coords(j, &start, shots);
            let label = format!("task {}/{} after task {}", j + 1, seq.tasks, after + 1);
            let acc = adapt(adaptation, model, key, &test, &label, coords, &ctx)?;
            self.seen.push((after, j, acc));
        }
        if let Some(down) = downstream {
            let coords = adapt_coords("downstream", &start, shots);
            let label = format!("downstream after task {}", after + 1);
            let acc = down.adapt(adaptation, (model, key), shared, &label, coords)?;
            self.downstream.push((after, acc));
        }
        Ok(())
    }
}

/// Where an adaptation starts: the final model (with its fingerprint), or
/// the random reference with its batch-norm statistics from the images of
/// the task it adapts to.
enum Start<'a> {
    Final(&'a Classifier, ModelKey),
    Scratch(&'a RandomReference),
}

impl Start<'_> {
    /// The model that adapts to the task whose training images are `set`.
    fn model_on(
        &self,
        set: &Arc<ImageSet>,
        seq: &Sequence,
        device: &Device,
    ) -> (Cow<'_, Classifier>, ModelKey) {
        match self {
            Start::Final(model, key) => (Cow::Borrowed(*model), *key),
            Start::Scratch(random) => {
                let model = random.on_set(set, seq, device);
                let key = ModelKey::of(&model);
                (Cow::Owned(model), key)
            }
        }
    }
}

/// A model adapted as `adaptation` says to each task alone and to the
/// downstream task, from `start`.
fn adapt_to_each(
    adaptation: &AdaptationConfig,
    start: Start,
    (seq, shared): (&Sequence, &TaskContext),
    downstream: Option<&DownstreamTask>,
    shots: Option<usize>,
) -> Result<Adapted, CoreError> {
    let (name, suffix) = match start {
        Start::Final(..) => ("final", ""),
        Start::Scratch(_) => ("scratch", ", from scratch"),
    };
    let tasks = seq.tasks;
    let mut adapted = Adapted::default();
    for j in 0..tasks {
        let (task_train, task_test) = task_alone(adaptation, seq, j);
        let (model, key) = start.model_on(&seq.train[j], seq, shared.device);
        // The task alone, labels from 0: what adaptation trains on.
        let ctx = alone(shared, j, task_train, seq.split.label_range(j).len());
        let label = format!("task {}/{tasks}{suffix}", j + 1);
        let coords = adapt_coords(j, name, shots);
        adapted.tasks.push(adapt(
            adaptation, &model, &key, &task_test, &label, coords, &ctx,
        )?);
    }
    if let Some(down) = downstream {
        // The reference's statistics from the images the adaptation trains on.
        let (model, key) = start.model_on(&down.train(adaptation), seq, shared.device);
        let coords = adapt_coords("downstream", name, shots);
        let label = format!("downstream{suffix}");
        adapted.downstream =
            Some(down.adapt(adaptation, (&model, &key), shared, &label, coords)?);
    }
    Ok(adapted)
}

/// The adaptation's rows: the final model's accuracy on each task alone
/// against the random reference adapted the same way (`scratch`); with
/// `every_task`, the accuracies after the earlier tasks and the forgetting
/// they show; and the downstream task.
fn adaptation_rows(
    adaptation: &AdaptationConfig,
    seq: &Sequence,
    during: AdaptedDuring,
    shots: Option<usize>,
    adapted: &Adapted,
    scratch: &Adapted,
) -> Vec<MetricRow> {
    let tasks = seq.tasks;
    let (mut rows, mut mean, mut gain) = (Vec::new(), 0.0, 0.0);
    for &(after, j, acc) in &during.seen {
        rows.push(MetricRow::entry(names::ADAPT_ACC, after, j, acc));
    }
    for j in 0..tasks {
        let (task_train, _) = task_alone(adaptation, seq, j);
        rows.push(MetricRow::at(
            names::ADAPT_TRAIN_IMAGES,
            task_train.len() as f64,
            Coords::new().with(names::TASK, j),
        ));
        let (acc, reference) = (adapted.tasks[j], scratch.tasks[j]);
        rows.push(MetricRow::entry(names::ADAPT_ACC, tasks - 1, j, acc));
        rows.push(MetricRow::entry(
            names::ADAPT_ACC_SCRATCH,
            tasks - 1,
            j,
            reference,
        ));
        mean += acc / tasks as f64;
        gain += (acc - reference) / tasks as f64;
    }
    rows.push(MetricRow::scalar(names::ADAPT_ACC, mean));
    rows.push(MetricRow::scalar(names::ADAPT_GAIN, gain));
    if adaptation.every_task && tasks > 1 {
        rows.push(MetricRow::scalar(
            names::ADAPT_FORGETTING,
            adapt_forgetting(&during.seen, &adapted.tasks),
        ));
    }
    if let (Some(acc), Some(reference)) = (adapted.downstream, scratch.downstream) {
        for &(after, acc) in &during.downstream {
            rows.push(MetricRow::at(
                names::ADAPT_DOWNSTREAM_ACC,
                acc,
                Coords::new().with(names::AFTER_TASK, after),
            ));
        }
        rows.push(MetricRow::at(
            names::ADAPT_DOWNSTREAM_ACC,
            acc,
            Coords::new().with(names::AFTER_TASK, tasks - 1),
        ));
        rows.push(MetricRow::scalar(names::ADAPT_DOWNSTREAM_ACC, acc));
        rows.push(MetricRow::scalar(
            names::ADAPT_DOWNSTREAM_ACC_SCRATCH,
            reference,
        ));
    }
    // A `shots` list: every row says which value it belongs to.
    if let Some(n) = shots {
        rows.iter_mut().for_each(|r| r.coords.set(names::SHOTS, n));
    }
    rows
}

/// Mean over tasks but the last of (best adaptation accuracy the task had,
/// after any task from its own on, − its final one): `during` holds
/// (after_task, task, accuracy) before the last task, `last` the final
/// accuracies.
fn adapt_forgetting(during: &[(usize, usize, f64)], last: &[f64]) -> f64 {
    let old = last.len().saturating_sub(1);
    if old == 0 {
        return 0.0;
    }
    (0..old)
        .map(|j| {
            let best = during
                .iter()
                .filter(|&&(_, task, _)| task == j)
                .map(|&(_, _, a)| a)
                .fold(last[j], f64::max);
            best - last[j]
        })
        .sum::<f64>()
        / old as f64
}

#[cfg(test)]
mod adapt_forgetting_tests {
    use super::adapt_forgetting;

    #[test]
    fn forgetting_is_the_best_earlier_adaptation_minus_the_final_one() {
        // Task 0: 80 after task 0, 70 after task 1, 60 at the end: 20.
        // Task 1: 50 after task 1, 55 at the end: 0 (it improved).
        let during = [(0, 0, 80.0), (1, 0, 70.0), (1, 1, 50.0)];
        assert_eq!(adapt_forgetting(&during, &[60.0, 55.0, 90.0]), 10.0);
        assert_eq!(adapt_forgetting(&[], &[60.0]), 0.0);
    }
}

/// Argmax over the columns in `allowed`, row by row.
fn argmax_rows(logits: &[f32], dim: usize, allowed: std::ops::Range<usize>) -> Vec<u32> {
    logits
        .chunks(dim)
        .map(|row| {
            let mut best = allowed.start;
            for c in allowed.clone() {
                if row[c] > row[best] {
                    best = c;
                }
            }
            best as u32
        })
        .collect()
}

/// For datasets with per-image domains: accuracy of the final model on all
/// test images, per region and per year, and the worst of each (WILDS'
/// FMoW metrics). Nothing for datasets without domains.
fn group_accuracy(test: &[Arc<ImageSet>], predictions: &[Vec<u32>]) -> Vec<MetricRow> {
    use std::collections::BTreeMap;
    if test.iter().any(|s| s.domains.len() != s.len()) || predictions.len() != test.len() {
        return Vec::new();
    }
    let (mut all, mut regions, mut years) = ((0usize, 0usize), BTreeMap::new(), BTreeMap::new());
    for (set, pred) in test.iter().zip(predictions) {
        for i in 0..set.len() {
            let hit = (pred[i] == set.labels[i]) as usize;
            let d = set.domains[i];
            for counter in [
                &mut all,
                regions.entry(d.region).or_insert((0, 0)),
                years.entry(d.year).or_insert((0, 0)),
            ] {
                counter.0 += hit;
                counter.1 += 1;
            }
        }
    }
    let pct = |(hit, n): (usize, usize)| 100.0 * hit as f64 / n.max(1) as f64;
    let mut rows = vec![MetricRow::scalar(names::ACC_ALL, pct(all))];
    for (r, c) in &regions {
        rows.push(MetricRow::at(
            names::ACC_BY_REGION,
            pct(*c),
            Coords::new().with(names::REGION, REGIONS[*r as usize]),
        ));
    }
    for (y, c) in &years {
        rows.push(MetricRow::at(
            names::ACC_BY_YEAR,
            pct(*c),
            Coords::new().with(names::YEAR, *y as usize),
        ));
    }
    let worst =
        |counts: Vec<(usize, usize)>| counts.into_iter().map(pct).fold(f64::INFINITY, f64::min);
    // WILDS' FMoW evaluation leaves the "Other" region out of the worst group.
    let other = REGIONS.iter().position(|r| *r == "Other").map(|i| i as u8);
    rows.push(MetricRow::scalar(
        names::WORST_REGION_ACC,
        worst(
            regions
                .iter()
                .filter(|(r, _)| Some(**r) != other)
                .map(|(_, c)| *c)
                .collect(),
        ),
    ));
    rows.push(MetricRow::scalar(
        names::WORST_YEAR_ACC,
        worst(years.values().copied().collect()),
    ));
    rows
}

#[cfg(test)]
mod tests {
    use super::*;
    use reusebench_data::Domain;

    #[test]
    fn worst_region_leaves_other_out() {
        // Four test images: Europe right, Asia right, Other wrong twice.
        let mut set = ImageSet::empty(1, 1, 1);
        let regions = ["Europe", "Asia", "Other", "Other"];
        for (i, r) in regions.iter().enumerate() {
            set.push(&[0], i as u32);
            set.domains.push(Domain {
                year: 2016,
                region: REGIONS.iter().position(|x| x == r).unwrap() as u8,
            });
        }
        let predictions = vec![vec![0, 1, 9, 9]];
        let rows = group_accuracy(&[Arc::new(set)], &predictions);
        let value = |m: &str| rows.iter().find(|r| r.metric == m).unwrap().value;
        assert_eq!(value(names::WORST_REGION_ACC), 100.0);
        assert_eq!(value(names::ACC_ALL), 50.0);
        let other = rows
            .iter()
            .find(|r| {
                r.coords
                    .get(names::REGION)
                    .is_some_and(|c| c.to_string() == "Other")
            })
            .unwrap();
        assert_eq!(other.value, 0.0, "Other is still reported on its own");
    }
}
