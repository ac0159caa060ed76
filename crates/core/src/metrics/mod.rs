//! Metrics and the rows they are reported as.

pub mod accuracy;
pub mod knn;

use serde::{Deserialize, Serialize};

pub use accuracy::{AccuracyMatrix, accuracy, masked_accuracy};
pub use knn::{KnnConfig, knn_accuracy};

/// One measured number. Matrix entries carry the task trained last
/// (`after_task`, the row i of R[i][j]) and the task evaluated (`task`, j).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MetricRow {
    pub metric: String,
    pub value: f64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub after_task: Option<usize>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub task: Option<usize>,
}

impl MetricRow {
    pub fn scalar(metric: &str, value: f64) -> Self {
        Self {
            metric: metric.into(),
            value,
            after_task: None,
            task: None,
        }
    }
    pub fn entry(metric: &str, after_task: usize, task: usize, value: f64) -> Self {
        Self {
            metric: metric.into(),
            value,
            after_task: Some(after_task),
            task: Some(task),
        }
    }
}
