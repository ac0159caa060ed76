//! Metrics, and the rows they are reported as (defined in
//! `reusebench-results`, shared with the runner and the report).

pub mod accuracy;
pub mod clustering;
pub mod groups;
pub mod knn;

pub use accuracy::{
    AccuracyMatrix, accuracy, forgetting_over_all_rows, gem_forward_transfer, masked_accuracy,
};
pub use groups::{group_rows, group_rows_of};
pub use knn::{KnnConfig, knn_accuracy};
pub use reusebench_results::{Coord, Coords, MetricRow, names};
