//! `continual`: a class-incremental task sequence learned by one method,
//! from a pretrained checkpoint or from scratch. After every task: the
//! class-IL and task-IL accuracy on every task seen, and kNN accuracy of the
//! backbone's features on every task (seen or not).

use std::sync::Arc;

use reusebench_data::{Augment, DatasetSpec, ImageSet, TaskSplit};
use serde::{Deserialize, Serialize};

use super::adaptation::{AdaptContext, AdaptationConfig, TaskData, adapt};
use super::{build_classifier, default_batch_size, default_eval_batch_size, load_with_classes};
use crate::backbone::BackboneConfig;
use crate::device::DeviceSpec;
use crate::error::CoreError;
use crate::features::{Rows, head_logits, model_features};
use crate::methods::{MethodConfig, TaskContext};
use crate::metrics::{AccuracyMatrix, KnnConfig, MetricRow, knn_accuracy, masked_accuracy};
use crate::progress::Progress;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ContinualConfig {
    pub seed: u64,
    pub data: DatasetSpec,
    /// Original class labels that make up the sequence; all when absent.
    #[serde(default)]
    pub classes: Option<Vec<u32>>,
    pub classes_per_task: usize,
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
    #[serde(default)]
    pub augment: Augment,
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

impl ContinualConfig {
    pub fn validate(&self) -> Result<(), CoreError> {
        self.method.validate()?;
        self.backbone.validate()?;
        if let Some(a) = &self.adaptation {
            a.validate()?;
        }
        if self.batch_size < 2 {
            return Err(CoreError::Config("batch_size must be >= 2".into()));
        }
        if let Some(k) = &self.knn
            && (k.k == 0 || k.temperature.is_nan() || k.temperature <= 0.0)
        {
            return Err(CoreError::Config(
                "knn.k must be >= 1 and knn.temperature > 0".into(),
            ));
        }
        Ok(())
    }
}

pub fn run(
    config: &ContinualConfig,
    device: DeviceSpec,
    progress: &dyn Progress,
) -> Result<Vec<MetricRow>, CoreError> {
    config.validate()?;
    let plain = device.device()?;
    plain.seed(config.seed);
    let train_device = plain.clone().autodiff();
    let (data, classes) = load_with_classes(&config.data, &config.classes)?;
    let split = TaskSplit::new(&classes, config.classes_per_task, config.class_order_seed)?;
    let tasks = split.num_tasks();
    let train: Vec<Arc<ImageSet>> = (0..tasks)
        .map(|t| Arc::new(split.task_images(&data.train, t)))
        .collect();
    let test: Vec<Arc<ImageSet>> = (0..tasks)
        .map(|t| Arc::new(split.task_images(&data.test, t)))
        .collect();
    if let Some(t) = (0..tasks).find(|&t| train[t].is_empty() || test[t].is_empty()) {
        return Err(CoreError::Config(format!(
            "task {t} has no training or test images"
        )));
    }

    let mut model = build_classifier(
        &config.backbone,
        split.num_classes(),
        config.seed,
        &train_device,
        progress,
    )?;
    let mut method = config.method.build();
    let mut class_il = AccuracyMatrix::new();
    let mut task_il = AccuracyMatrix::new();
    let mut knn_seen = AccuracyMatrix::new();
    let mut rows = Vec::new();
    let norm = data.normalization;
    let ebs = config.eval_batch_size;

    for t in 0..tasks {
        let ctx = TaskContext {
            task: t,
            num_tasks: tasks,
            train: Arc::clone(&train[t]),
            history: &train[..=t],
            class_range: split.label_range(t),
            num_classes: split.num_classes(),
            batch_size: config.batch_size,
            eval_batch_size: ebs,
            augment: config.augment,
            normalization: norm,
            seed: config.seed,
            device: &train_device,
            progress,
        };
        model = method.learn_task(model, &ctx)?;

        // Each test set passes through the backbone once: its features feed
        // both the head (accuracy matrix) and the kNN queries.
        let evaluated = if config.knn.is_some() { tasks } else { t + 1 };
        let test_features: Vec<Rows> = test[..evaluated]
            .iter()
            .map(|set| model_features(&model, set, ebs, norm, &train_device))
            .collect();

        // Class-IL: argmax over every class seen so far; task-IL: over the task's own classes.
        let seen = split.label_range(t).end;
        let (mut cil_row, mut til_row) = (Vec::new(), Vec::new());
        for j in 0..=t {
            let out = head_logits(&model.head, &test_features[j], &train_device);
            let cil = masked_accuracy(&out.values, out.dim, &test[j].labels, 0..seen);
            let til = masked_accuracy(&out.values, out.dim, &test[j].labels, split.label_range(j));
            rows.push(MetricRow::entry("acc_class_il", t, j, cil));
            rows.push(MetricRow::entry("acc_task_il", t, j, til));
            cil_row.push(cil);
            til_row.push(til);
        }
        class_il.push_row(cil_row);
        task_il.push_row(til_row);

        if let Some(knn) = &config.knn {
            let mut knn_row = Vec::new();
            for j in 0..tasks {
                let bank = model_features(&model, &train[j], ebs, norm, &train_device);
                let acc = knn_accuracy(
                    &bank,
                    &train[j].labels,
                    &test_features[j],
                    &test[j].labels,
                    knn,
                );
                rows.push(MetricRow::entry("knn_acc", t, j, acc));
                if j <= t {
                    knn_row.push(acc);
                }
            }
            knn_seen.push_row(knn_row);
        }
        progress.note(&format!(
            "after task {}/{tasks}: class-IL {:.1}%, task-IL {:.1}%",
            t + 1,
            class_il.average_accuracy(),
            task_il.average_accuracy()
        ));
    }

    type Summary = fn(&AccuracyMatrix) -> f64;
    let summaries: [(&str, Summary); 3] = [
        ("avg_acc", AccuracyMatrix::average_accuracy),
        ("forgetting", AccuracyMatrix::forgetting),
        ("bwt", AccuracyMatrix::backward_transfer),
    ];
    for (metric, summary) in summaries {
        for (setting, matrix) in [("class_il", &class_il), ("task_il", &task_il)] {
            rows.push(MetricRow::scalar(
                &format!("{metric}_{setting}"),
                summary(matrix),
            ));
        }
    }
    if config.knn.is_some() {
        rows.push(MetricRow::scalar("knn_acc", knn_seen.average_accuracy()));
        rows.push(MetricRow::scalar("knn_forgetting", knn_seen.forgetting()));
    }

    if let Some(adaptation) = &config.adaptation {
        let ctx = AdaptContext {
            batch_size: config.batch_size,
            eval_batch_size: ebs,
            augment: config.augment,
            normalization: norm,
            seed: config.seed,
            device: &train_device,
            progress,
        };
        // The from-scratch reference: same architecture, random weights
        // (from the cell's seed), no checkpoint.
        let scratch_config = BackboneConfig {
            checkpoint: None,
            weights: None,
            weights_key: None,
            keep_head: false,
            allow_partial: false,
            ..config.backbone.clone()
        };
        let scratch = build_classifier(&scratch_config, split.num_classes(), config.seed, &train_device, progress)?;
        let (mut adapted, mut gain) = (0.0, 0.0);
        for j in 0..tasks {
            let start = split.label_range(j).start as u32;
            let renumber = |set: &ImageSet| set.select_classes(&|l| l.checked_sub(start));
            let task = TaskData {
                train: Arc::new(renumber(&train[j])),
                test: Arc::new(renumber(&test[j])),
                classes: split.label_range(j).len(),
            };
            let acc = adapt(adaptation, &model, &task, &format!("task {}/{tasks}", j + 1), &ctx)?;
            let reference = adapt(adaptation, &scratch, &task, &format!("task {}/{tasks}, from scratch", j + 1), &ctx)?;
            rows.push(MetricRow::entry("adapt_acc", tasks - 1, j, acc));
            rows.push(MetricRow::entry("adapt_acc_scratch", tasks - 1, j, reference));
            adapted += acc / tasks as f64;
            gain += (acc - reference) / tasks as f64;
        }
        rows.push(MetricRow::scalar("adapt_acc", adapted));
        rows.push(MetricRow::scalar("forward_transfer", gain));
    }
    Ok(rows)
}
