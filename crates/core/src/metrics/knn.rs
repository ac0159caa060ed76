//! Weighted k-nearest-neighbour accuracy on L2-normalised features, as in the
//! UCL/LUMP code the LP-FT line of work uses: cosine similarity, the k most
//! similar bank samples vote with weight exp(sim / temperature).

use serde::{Deserialize, Serialize};

use crate::bounded::{Positive, PositiveInt};
use crate::features::Rows;
use reusebench_kernels::similarity::Bank;

/// Queries whose similarities are computed together (64 × a 5 000-row bank
/// is 1.3 MB).
const QUERY_BLOCK: usize = 64;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct KnnConfig {
    pub k: PositiveInt,
    pub temperature: Positive,
}

/// UCL/LUMP's values: 200 neighbours at temperature 0.1.
impl Default for KnnConfig {
    fn default() -> Self {
        Self {
            k: PositiveInt::of(200),
            temperature: Positive::of(0.1),
        }
    }
}

fn normalized(rows: &Rows) -> Vec<f32> {
    let mut out = rows.values.clone();
    for row in out.chunks_mut(rows.dim) {
        let norm = row.iter().map(|v| v * v).sum::<f32>().sqrt().max(1e-12);
        row.iter_mut().for_each(|v| *v /= norm);
    }
    out
}

/// Accuracy (in %) of the weighted kNN classifier built on `bank` with
/// `bank_labels`, on `queries` with `query_labels`. k is capped at the bank size.
pub fn knn_accuracy(
    bank: &Rows,
    bank_labels: &[u32],
    queries: &Rows,
    query_labels: &[u32],
    config: &KnnConfig,
) -> f64 {
    assert_eq!(bank.dim, queries.dim);
    if query_labels.is_empty() || bank_labels.is_empty() {
        return f64::NAN;
    }
    let dim = bank.dim;
    let b = Bank::new(&normalized(bank), dim);
    let q = normalized(queries);
    let classes = bank_labels.iter().max().map_or(0, |&m| m as usize + 1);
    let k = config.k.get().min(bank_labels.len()).max(1);
    let mut sims: Vec<(f32, u32)> = Vec::with_capacity(bank_labels.len());
    let mut votes = vec![0f64; classes];
    let mut correct = 0;
    // The similarities of a block of queries at once (the bank is read once
    // per tile of queries); bit for bit the per-pair dot products.
    let n = bank_labels.len();
    let mut block = vec![0f32; QUERY_BLOCK.min(query_labels.len()) * n];
    for (block_start, labels) in (0..)
        .step_by(QUERY_BLOCK)
        .zip(query_labels.chunks(QUERY_BLOCK))
    {
        let block = &mut block[..labels.len() * n];
        b.dot_products(
            &q[block_start * dim..(block_start + labels.len()) * dim],
            block,
        );
        for (row, &label) in block.chunks_exact(n).zip(labels) {
            sims.clear();
            sims.extend(row.iter().copied().zip(bank_labels.iter().copied()));
            // Deterministic: the same similarities in bank order select the same k.
            sims.select_nth_unstable_by(k - 1, |a, b| b.0.total_cmp(&a.0));
            votes.iter_mut().for_each(|v| *v = 0.0);
            for &(s, bl) in &sims[..k] {
                votes[bl as usize] += (s as f64 / config.temperature.get()).exp();
            }
            let pred = votes
                .iter()
                .enumerate()
                .fold(
                    (0, f64::MIN),
                    |best, (c, &v)| if v > best.1 { (c, v) } else { best },
                )
                .0;
            if pred == label as usize {
                correct += 1;
            }
        }
    }
    100.0 * correct as f64 / query_labels.len() as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rows(values: Vec<f32>, dim: usize) -> Rows {
        Rows { values, dim }
    }

    #[test]
    fn toy_embedding_by_hand() {
        // Class 0 points along x, class 1 along y; lengths differ (normalisation matters).
        let bank = rows(vec![10.0, 0.0, 1.0, 0.1, 0.0, 3.0, 0.2, 1.0], 2);
        let bank_labels = [0, 0, 1, 1];
        let queries = rows(vec![5.0, 1.0, 0.1, 7.0, 1.0, 1.01], 2);
        // the third query sits on the diagonal, slightly towards y
        let cfg = KnnConfig {
            k: PositiveInt::of(2),
            temperature: Positive::of(0.1),
        };
        let acc = knn_accuracy(&bank, &bank_labels, &queries, &[0, 1, 1], &cfg);
        assert!((acc - 100.0).abs() < 1e-9);
        let acc = knn_accuracy(&bank, &bank_labels, &queries, &[1, 1, 0], &cfg);
        assert!((acc - 100.0 / 3.0).abs() < 1e-9);
    }

    #[test]
    fn weighting_beats_majority() {
        // k = 3: one very similar class-1 neighbour outweighs two far class-0 ones
        // at a low temperature, and loses at a high one.
        let bank = rows(vec![1.0, 0.0, /**/ 0.0, 1.0, /**/ 0.0, 1.0], 2);
        let labels = [1, 0, 0];
        let q = rows(vec![1.0, 0.05], 2);
        let low = KnnConfig {
            k: PositiveInt::of(3),
            temperature: Positive::of(0.1),
        };
        let high = KnnConfig {
            k: PositiveInt::of(3),
            temperature: Positive::of(100.0),
        };
        assert_eq!(knn_accuracy(&bank, &labels, &q, &[1], &low), 100.0);
        assert_eq!(knn_accuracy(&bank, &labels, &q, &[1], &high), 0.0);
    }
}
