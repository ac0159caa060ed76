//! `continual`: a class-incremental task sequence learned by one method,
//! from a pretrained checkpoint or from scratch. After every task: the
//! class-IL and task-IL accuracy on every task seen, and kNN accuracy of the
//! backbone's features on every task (seen or not).

pub mod adaptation;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use reusebench_data::fmow::REGIONS;
use reusebench_data::{
    Augment, DatasetSpec, DomainTasks, ImageSet, NormalizationChoice, TaskSequence, TaskSplit,
};
use serde::{Deserialize, Serialize};

use adaptation::{AdaptationConfig, adapt};
use reusebench_core::backbone::BackboneConfig;
use reusebench_core::feature_cache::FeatureCache;
use reusebench_core::features::{
    ModelKey, Rows, cached_features_keyed, head_logits, logits, recompute_batch_norm,
};
use reusebench_core::methods::{MethodConfig, TaskContext};
use reusebench_core::metrics::{
    AccuracyMatrix, Coords, KnnConfig, MetricRow, forgetting_over_all_rows, gem_forward_transfer,
    knn_accuracy, masked_accuracy, names,
};
use reusebench_core::model::Classifier;
use reusebench_core::protocol::{
    Checks, Protocol, RunEnv, check_classes, default_batch_size, default_eval_batch_size,
};
use reusebench_core::{CoreError, PhaseTimes};

/// The protocol, as the runner's registry names it.
pub struct Continual;

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

    fn validate(config: &ContinualConfig, checks: &Checks) -> Result<(), CoreError> {
        config.method.validate()?;
        checks.backbone(&config.backbone, "backbone")?;
        if let Some(a) = &config.adaptation {
            a.validate()?;
        }
        if config.batch_size < 2 {
            return Err(CoreError::config("batch_size", "must be >= 2"));
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
        if let Some(k) = &config.knn {
            if k.k == 0 {
                return Err(CoreError::config("knn.k", "must be >= 1"));
            }
            if k.temperature.is_nan() || k.temperature <= 0.0 {
                return Err(CoreError::config("knn.temperature", "must be > 0"));
            }
        }
        Ok(())
    }

    fn seed(config: &ContinualConfig) -> u64 {
        config.seed
    }

    fn method(config: &ContinualConfig) -> String {
        config.method.label()
    }

    fn inputs(config: &ContinualConfig) -> Vec<PathBuf> {
        let mut v = config.data.required_paths();
        v.extend(config.backbone.files());
        v
    }

    fn run(config: &ContinualConfig, env: &RunEnv) -> Result<Vec<MetricRow>, CoreError> {
        run(config, env)
    }
}

fn run(config: &ContinualConfig, env: &RunEnv) -> Result<Vec<MetricRow>, CoreError> {
    let progress = env.progress;
    let mut times = PhaseTimes::default();
    let started = Instant::now();
    let train_device = env.train_device(config.seed)?;
    let (data, classes) = env.load_dataset(&config.data, &config.classes)?;
    let split = match (&config.classes_per_task, &config.domains) {
        (Some(n), _) => {
            TaskSequence::Classes(TaskSplit::new(&classes, *n, config.class_order_seed)?)
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
        return Err(CoreError::config(
            "",
            format!(
                "task {t} ({}) has {} training and {} test images; every task needs both{}",
                match &config.domains {
                    Some(d) => d.describe(t),
                    None => format!("classes {:?}", split.label_range(t)),
                },
                train[t].len(),
                test[t].len(),
                if config.domains.is_some() {
                    " (year tasks on FMoW's official split have no test images before 2016: use split: {kind: random, ...})"
                } else {
                    ""
                }
            ),
        ));
    }

    let mut model = env.build_classifier(
        &config.backbone,
        split.num_classes(),
        config.seed,
        &train_device,
    )?;
    let mut method = config.method.build();
    let mut class_il = AccuracyMatrix::new();
    let mut task_il = AccuracyMatrix::new();
    let mut knn_seen = AccuracyMatrix::new();
    // Every task after every task (UCL's kNN forgetting needs the unseen ones too).
    let mut knn_all: Vec<Vec<f64>> = Vec::new();
    let mut rows = Vec::new();
    let norm = config.normalization.resolve(data.normalization);
    let ebs = config.eval_batch_size;
    let setting = split.setting();
    let setting_names = names::setting(setting).expect("every setting has names");
    let cache = FeatureCache::default();
    let mut final_predictions: Vec<Vec<u32>> = Vec::new();
    // R[t][t + 1], class-IL (or domain-IL) and task-IL.
    let mut before: (Vec<f64>, Vec<f64>) = (Vec::new(), Vec::new());
    times.add("data and model", started);

    // What every task's context shares; each task sets its own data.
    let shared = TaskContext {
        task: 0,
        num_tasks: tasks,
        train: Arc::clone(&train[0]),
        history: &train[..1],
        old_classes: 0,
        seen_classes: split.label_range(0).end,
        num_classes: split.num_classes(),
        batch_size: config.batch_size,
        eval_batch_size: ebs,
        augment: config.augment.unwrap_or(config.data.default_augment()),
        normalization: norm,
        seed: config.seed,
        device: &train_device,
        features: &cache,
        progress,
        curves: &env.curves,
    };
    for t in 0..tasks {
        let ctx = TaskContext {
            task: t,
            train: Arc::clone(&train[t]),
            history: &train[..=t],
            old_classes: split.old_classes(t),
            seen_classes: split.label_range(t).end,
            ..shared
        };
        let started = Instant::now();
        model = method.learn_task(model, &ctx)?;
        times.add("train", started);
        let started = Instant::now();
        // The model each task is evaluated with: the current one, or the
        // task's own where the method keeps one per task (lifelong
        // side-tuning).
        let models: Vec<Classifier> = (0..tasks)
            .map(|j| method.task_model(j).unwrap_or_else(|| model.clone()))
            .collect();
        let keys: Vec<ModelKey> = models.iter().map(ModelKey::of).collect();

        // Each test set passes through the backbone once: its features feed
        // both the head (accuracy matrix) and the kNN queries.
        // (The next task too: GEM's forward transfer needs R[t][t + 1].)
        let evaluated = if config.knn.is_some() {
            tasks
        } else {
            (t + 2).min(tasks)
        };
        let test_features: Vec<Arc<Rows>> = test[..evaluated]
            .iter()
            .enumerate()
            .map(|(j, set)| {
                cached_features_keyed(&cache, &models[j], &keys[j], set, ebs, norm, &train_device)
            })
            .collect();

        // Class-IL: argmax over every class seen so far; task-IL: over the
        // task's own classes. Domain-IL: every task has every class, so one
        // accuracy (named by the setting), no task-IL.
        let seen = split.label_range(t).end;
        let (mut cil_row, mut til_row) = (Vec::new(), Vec::new());
        for j in 0..=t {
            let out = head_logits(&models[j].head, &test_features[j], &train_device);
            let cil = masked_accuracy(&out.values, out.dim, &test[j].labels, 0..seen);
            rows.push(MetricRow::entry(setting_names.matrix, t, j, cil));
            cil_row.push(cil);
            if setting == "class_il" {
                let til =
                    masked_accuracy(&out.values, out.dim, &test[j].labels, split.label_range(j));
                rows.push(MetricRow::entry(names::ACC_TASK_IL, t, j, til));
                til_row.push(til);
            }
            if t + 1 == tasks {
                final_predictions.push(argmax_rows(&out.values, out.dim, 0..seen));
            }
        }
        if t + 1 < tasks {
            let next = t + 1;
            let out = head_logits(&models[next].head, &test_features[next], &train_device);
            let labels = &test[next].labels;
            let cil = masked_accuracy(&out.values, out.dim, labels, 0..split.label_range(next).end);
            rows.push(MetricRow::entry(setting_names.before, t, next, cil));
            before.0.push(cil);
            if setting == "class_il" {
                let til = masked_accuracy(&out.values, out.dim, labels, split.label_range(next));
                rows.push(MetricRow::entry(names::ACC_TASK_IL_BEFORE, t, next, til));
                before.1.push(til);
            }
        }
        class_il.push_row(cil_row);
        if !til_row.is_empty() {
            task_il.push_row(til_row);
        }
        times.add("evaluation", started);

        let started = Instant::now();
        if let Some(knn) = &config.knn {
            let mut knn_row = Vec::new();
            let mut knn_full_row = Vec::new();
            for j in 0..tasks {
                let bank = cached_features_keyed(
                    &cache,
                    &models[j],
                    &keys[j],
                    &train[j],
                    ebs,
                    norm,
                    &train_device,
                );
                let acc = knn_accuracy(
                    &bank,
                    &train[j].labels,
                    &test_features[j],
                    &test[j].labels,
                    knn,
                );
                rows.push(MetricRow::entry(names::KNN_ACC, t, j, acc));
                knn_full_row.push(acc);
                if j <= t {
                    knn_row.push(acc);
                }
            }
            knn_seen.push_row(knn_row);
            knn_all.push(knn_full_row);
            times.add("knn", started);
        }
        progress.note(&format!(
            "after task {}/{tasks}: {setting} {:.1}%{}",
            t + 1,
            class_il.average_accuracy(),
            if setting == "class_il" {
                format!(", task-IL {:.1}%", task_il.average_accuracy())
            } else {
                String::new()
            }
        ));
    }

    type Summary = fn(&AccuracyMatrix) -> f64;
    let task_names = names::setting("task_il").expect("a setting");
    let summaries: [(&str, &str, Summary); 4] = [
        (
            setting_names.avg,
            task_names.avg,
            AccuracyMatrix::average_accuracy,
        ),
        (
            setting_names.forgetting,
            task_names.forgetting,
            AccuracyMatrix::forgetting,
        ),
        (
            setting_names.forgetting_mammoth,
            task_names.forgetting_mammoth,
            AccuracyMatrix::forgetting_mammoth,
        ),
        (
            setting_names.bwt,
            task_names.bwt,
            AccuracyMatrix::backward_transfer,
        ),
    ];
    for (metric, task_metric, summary) in summaries {
        rows.push(MetricRow::scalar(metric, summary(&class_il)));
        if setting == "class_il" {
            rows.push(MetricRow::scalar(task_metric, summary(&task_il)));
        }
    }
    rows.extend(group_accuracy(&test, &final_predictions));

    // The random reference: same architecture, random weights (the cell's
    // seed), no checkpoint; per task, its batch-norm statistics recomputed
    // on that task's training data before it is used.
    let started = Instant::now();
    let random_config = BackboneConfig {
        checkpoint: None,
        weights: None,
        weights_key: None,
        keep_head: false,
        allow_partial: false,
        ..config.backbone.clone()
    };
    let random = env.build_classifier(
        &random_config,
        split.num_classes(),
        config.seed,
        &train_device,
    )?;
    // Made anew at each use, never kept: burn's RunningState is shared
    // between clones (an Arc), so every recompute rewrites the statistics
    // of `random` and of every earlier copy. Each copy is used right after
    // its recompute (forward transfer, then again for the adaptation's
    // reference: the recompute runs twice per task, a cheap pass).
    let random_on = |j: usize| {
        let backbone = recompute_batch_norm(
            random.backbone().clone(),
            &train[j],
            config.batch_size,
            norm,
            &train_device,
        );
        Classifier::new(backbone, random.head.clone())
    };
    if tasks > 1 {
        let (mut random_cil, mut random_til) = (Vec::new(), Vec::new());
        for j in 1..tasks {
            let out = logits(&random_on(j), &test[j], ebs, norm, &train_device);
            let labels = &test[j].labels;
            let cil = masked_accuracy(&out.values, out.dim, labels, 0..split.label_range(j).end);
            let at = Coords::new().with(names::TASK, j);
            rows.push(MetricRow::at(setting_names.random, cil, at.clone()));
            random_cil.push(cil);
            if setting == "class_il" {
                let til = masked_accuracy(&out.values, out.dim, labels, split.label_range(j));
                rows.push(MetricRow::at(names::ACC_TASK_IL_RANDOM, til, at));
                random_til.push(til);
            }
        }
        rows.push(MetricRow::scalar(
            setting_names.fwt,
            gem_forward_transfer(&before.0, &random_cil),
        ));
        if setting == "class_il" {
            rows.push(MetricRow::scalar(
                names::FWT_TASK_IL,
                gem_forward_transfer(&before.1, &random_til),
            ));
        }
    }

    times.add("random reference", started);

    if config.knn.is_some() {
        rows.push(MetricRow::scalar(
            names::KNN_ACC,
            knn_seen.average_accuracy(),
        ));
        rows.push(MetricRow::scalar(
            names::KNN_FORGETTING,
            forgetting_over_all_rows(&knn_all),
        ));
        rows.push(MetricRow::scalar(
            names::KNN_FORGETTING_CHAUDHRY,
            knn_seen.forgetting(),
        ));
    }

    let started = Instant::now();
    if let Some(adaptation) = &config.adaptation {
        let final_key = ModelKey::of(&model);
        let (mut adapted, mut gain) = (0.0, 0.0);
        for j in 0..tasks {
            let start = split.label_range(j).start as u32;
            let renumber = |set: &ImageSet| set.select_classes(&|l| l.checked_sub(start));
            let task_test = Arc::new(renumber(&test[j]));
            let task_train = renumber(&train[j]);
            let task_train = Arc::new(match adaptation.samples_per_class {
                Some(n) => task_train.cap_per_class(n),
                None => task_train,
            });
            rows.push(MetricRow::at(
                names::ADAPT_TRAIN_IMAGES,
                task_train.len() as f64,
                Coords::new().with(names::TASK, j),
            ));
            // The task alone, labels from 0: what adaptation trains on.
            let ctx = TaskContext {
                task: j,
                train: task_train,
                history: &[],
                old_classes: 0,
                seen_classes: split.label_range(j).len(),
                num_classes: split.label_range(j).len(),
                ..shared
            };
            let at = |start: &str| {
                Coords::new()
                    .with(names::TASK, j)
                    .with(names::START, start)
                    .with(names::STAGE, "adaptation")
            };
            let acc = adapt(
                adaptation,
                &model,
                &final_key,
                &task_test,
                &format!("task {}/{tasks}", j + 1),
                at("final"),
                &ctx,
            )?;
            // The random reference with its batch-norm statistics from this task.
            let scratch = random_on(j);
            let scratch_key = ModelKey::of(&scratch);
            let reference = adapt(
                adaptation,
                &scratch,
                &scratch_key,
                &task_test,
                &format!("task {}/{tasks}, from scratch", j + 1),
                at("scratch"),
                &ctx,
            )?;
            rows.push(MetricRow::entry(names::ADAPT_ACC, tasks - 1, j, acc));
            rows.push(MetricRow::entry(
                names::ADAPT_ACC_SCRATCH,
                tasks - 1,
                j,
                reference,
            ));
            adapted += acc / tasks as f64;
            gain += (acc - reference) / tasks as f64;
        }
        rows.push(MetricRow::scalar(names::ADAPT_ACC, adapted));
        rows.push(MetricRow::scalar(names::ADAPT_GAIN, gain));
        times.add("adaptation", started);
    }
    let stats = cache.stats();
    progress.note(&format!(
        "feature cache: {} hit(s), {} miss(es)",
        stats.hits, stats.misses
    ));
    progress.note(&times.summary());
    Ok(rows)
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
