//! Accuracy, the continual-learning accuracy matrix and what is derived from
//! it: average accuracy, forgetting and backward transfer.

/// Top-1 accuracy (in %) of argmax over the logit columns in `allowed`.
pub fn masked_accuracy(
    logits: &[f32],
    dim: usize,
    labels: &[u32],
    allowed: std::ops::Range<usize>,
) -> f64 {
    if labels.is_empty() {
        return f64::NAN;
    }
    let correct = labels
        .iter()
        .enumerate()
        .filter(|&(i, &label)| {
            let row = &logits[i * dim..(i + 1) * dim];
            let mut best = allowed.start;
            for c in allowed.clone() {
                if row[c] > row[best] {
                    best = c;
                }
            }
            best == label as usize
        })
        .count();
    100.0 * correct as f64 / labels.len() as f64
}

/// Top-1 accuracy (in %) over all logit columns.
pub fn accuracy(logits: &[f32], dim: usize, labels: &[u32]) -> f64 {
    masked_accuracy(logits, dim, labels, 0..dim)
}

/// `R[i][j]`: accuracy on task `j` after training task `i`, for `j <= i`.
#[derive(Debug, Clone, PartialEq)]
pub struct AccuracyMatrix {
    pub rows: Vec<Vec<f64>>,
}

impl AccuracyMatrix {
    pub fn new() -> Self {
        Self { rows: Vec::new() }
    }

    /// Appends the accuracies measured after training the next task
    /// (one per task learned so far).
    pub fn push_row(&mut self, row: Vec<f64>) {
        assert_eq!(row.len(), self.rows.len() + 1, "row i holds tasks 0..=i");
        self.rows.push(row);
    }

    pub fn num_tasks(&self) -> usize {
        self.rows.len()
    }

    /// Mean accuracy over all tasks after the last one.
    pub fn average_accuracy(&self) -> f64 {
        let last = self.rows.last().expect("empty matrix");
        last.iter().sum::<f64>() / last.len() as f64
    }

    /// Forgetting as Chaudhry et al. (2018) define it: mean over all but
    /// the last task of (best accuracy before the end − final accuracy).
    /// Can be negative (a task that improved later). NaN with a single task.
    pub fn forgetting(&self) -> f64 {
        self.forgetting_with_best_over(false)
    }

    /// Mean over all but the last task of (best of its column − final),
    /// the best taken before the last row or, with `final_row`, over every
    /// row.
    fn forgetting_with_best_over(&self, final_row: bool) -> f64 {
        let t = self.num_tasks();
        if t < 2 {
            return f64::NAN;
        }
        let last = &self.rows[t - 1];
        let end = if final_row { t } else { t - 1 };
        let sum: f64 = (0..t - 1)
            .map(|j| {
                let best = (j..end).map(|i| self.rows[i][j]).fold(f64::MIN, f64::max);
                best - last[j]
            })
            .sum();
        sum / (t - 1) as f64
    }

    /// Forgetting as Mammoth's `utils/metrics.py::forgetting` computes it:
    /// the best is taken over every row, the final one included, so the
    /// value is >= 0. NaN with a single task.
    pub fn forgetting_mammoth(&self) -> f64 {
        self.forgetting_with_best_over(true)
    }

    /// Mean over all but the last task of (final accuracy − accuracy just after learning it).
    pub fn backward_transfer(&self) -> f64 {
        let t = self.num_tasks();
        if t < 2 {
            return f64::NAN;
        }
        let last = &self.rows[t - 1];
        (0..t - 1).map(|j| last[j] - self.rows[j][j]).sum::<f64>() / (t - 1) as f64
    }
}

/// kNN forgetting as UCL / LUMP's `linear_eval_alltasks.py` computes it,
/// on the full matrix (every task evaluated after every task, `rows[i][j]`
/// for all j): for each of the T tasks, the maximum over all rows minus
/// the final value, averaged over the T tasks. >= 0; the last task counts
/// too (as 0 unless it was better before it was learned).
pub fn forgetting_over_all_rows(rows: &[Vec<f64>]) -> f64 {
    let Some(last) = rows.last() else {
        return f64::NAN;
    };
    let t = last.len();
    let sum: f64 = (0..t)
        .map(|j| rows.iter().map(|r| r[j]).fold(f64::MIN, f64::max) - last[j])
        .sum();
    sum / t as f64
}

/// Forward transfer as GEM (Lopez-Paz & Ranzato 2017) and Mammoth's
/// `utils/metrics.py::forward_transfer` define it: the mean over tasks
/// i >= 1 of R[i-1][i] (the accuracy on task i just before learning it,
/// `before[i - 1]`) minus a randomly initialised model's accuracy on task i
/// (`random[i - 1]`).
pub fn gem_forward_transfer(before: &[f64], random: &[f64]) -> f64 {
    assert_eq!(before.len(), random.len(), "one value per task i >= 1");
    if before.is_empty() {
        return f64::NAN;
    }
    before.iter().zip(random).map(|(b, r)| b - r).sum::<f64>() / before.len() as f64
}

impl Default for AccuracyMatrix {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matrix_metrics_by_hand() {
        // R = [[90], [60, 80], [70, 50, 85]]
        let mut r = AccuracyMatrix::new();
        r.push_row(vec![90.0]);
        r.push_row(vec![60.0, 80.0]);
        r.push_row(vec![70.0, 50.0, 85.0]);
        // average of the last row
        assert!((r.average_accuracy() - 205.0 / 3.0).abs() < 1e-12);
        // forgetting: task0 best(90, 60)=90 - 70 = 20; task1 best(80)=80 - 50 = 30 -> 25
        assert!((r.forgetting() - 25.0).abs() < 1e-12);
        // bwt: (70-90 + 50-80)/2 = -25
        assert!((r.backward_transfer() + 25.0).abs() < 1e-12);
    }

    #[test]
    fn forgetting_uses_best_not_first() {
        let mut r = AccuracyMatrix::new();
        r.push_row(vec![50.0]);
        r.push_row(vec![70.0, 90.0]); // task 0 improved after task 1
        r.push_row(vec![65.0, 90.0, 80.0]);
        // task0: best(50,70)=70 - 65 = 5; task1: 90 - 90 = 0
        assert!((r.forgetting() - 2.5).abs() < 1e-12);
        // bwt: (65-50 + 90-90)/2 = 7.5 (positive transfer)
        assert!((r.backward_transfer() - 7.5).abs() < 1e-12);
        let mut single = AccuracyMatrix::new();
        single.push_row(vec![40.0]);
        assert!(single.forgetting().is_nan());
    }

    #[test]
    fn mammoth_forgetting_takes_the_best_over_every_row() {
        // Task 0 is best in the final row: Chaudhry's value is negative,
        // Mammoth's is 0 for it.
        let mut r = AccuracyMatrix::new();
        r.push_row(vec![50.0]);
        r.push_row(vec![40.0, 90.0]);
        r.push_row(vec![60.0, 70.0, 80.0]);
        // Chaudhry: (50 - 60) + (90 - 70) = 10 / 2 = 5
        assert!((r.forgetting() - 5.0).abs() < 1e-12);
        // Mammoth: max(50, 40, 60) - 60 = 0; max(90, 70) - 70 = 20 -> 10
        assert!((r.forgetting_mammoth() - 10.0).abs() < 1e-12);
    }

    #[test]
    fn ucl_knn_forgetting_by_hand() {
        // Full 3x3 kNN matrix: every task evaluated after every task.
        let rows = vec![
            vec![80.0, 30.0, 20.0],
            vec![60.0, 85.0, 40.0],
            vec![70.0, 75.0, 90.0],
        ];
        // task 0: 80 - 70 = 10; task 1: 85 - 75 = 10; task 2: 90 - 90 = 0 -> 20 / 3
        assert!((forgetting_over_all_rows(&rows) - 20.0 / 3.0).abs() < 1e-12);
        // Today's Chaudhry-style value on the seen part: (80 - 70 + 85 - 75) / 2 = 10.
        let mut seen = AccuracyMatrix::new();
        for (i, r) in rows.iter().enumerate() {
            seen.push_row(r[..=i].to_vec());
        }
        assert!((seen.forgetting() - 10.0).abs() < 1e-12);
    }

    #[test]
    fn gem_forward_transfer_by_hand() {
        // R[0][1] = 30, R[1][2] = 20; the random model: 25 and 30.
        assert!((gem_forward_transfer(&[30.0, 20.0], &[25.0, 30.0]) + 2.5).abs() < 1e-12);
        assert!(gem_forward_transfer(&[], &[]).is_nan());
    }

    #[test]
    fn masked_accuracy_restricts_columns() {
        // two samples, 4 classes
        let logits = [0.0, 5.0, 1.0, 2.0, /**/ 9.0, 0.0, 3.0, 1.0];
        let labels = [3, 2];
        assert_eq!(accuracy(&logits, 4, &labels), 0.0);
        // task-IL on task {2,3}: sample0 picks 3 (2.0 > 1.0), sample1 picks 2 (3 > 1)
        assert_eq!(masked_accuracy(&logits, 4, &labels, 2..4), 100.0);
        assert_eq!(masked_accuracy(&logits, 4, &labels, 0..2), 0.0);
    }
}
