//! Clustering on host rows: k-means (Lloyd) from given initial centroids,
//! and the adjusted Rand index between two labelings (Hubert & Arabie 1985,
//! as scikit-learn's `adjusted_rand_score`).

/// Cluster of each row of `rows` (`[n, dim]`) after Lloyd's iterations from
/// `centroids` (`[k, dim]`), until no assignment changes or `max_iter`. A
/// cluster that loses every row keeps its centroid.
pub fn kmeans(rows: &[f32], dim: usize, centroids: &[f64], max_iter: usize) -> Vec<usize> {
    let k = centroids.len() / dim.max(1);
    let n = rows.len() / dim.max(1);
    let mut centroids = centroids.to_vec();
    let mut assign = vec![usize::MAX; n];
    for _ in 0..max_iter.max(1) {
        let mut changed = false;
        for (i, row) in rows.chunks(dim).enumerate() {
            let best = (0..k)
                .map(|c| {
                    let d: f64 = row
                        .iter()
                        .zip(&centroids[c * dim..(c + 1) * dim])
                        .map(|(&x, &m)| (x as f64 - m).powi(2))
                        .sum();
                    (c, d)
                })
                .fold((0, f64::INFINITY), |a, b| if b.1 < a.1 { b } else { a })
                .0;
            if assign[i] != best {
                assign[i] = best;
                changed = true;
            }
        }
        if !changed {
            break;
        }
        let mut sums = vec![0.0; k * dim];
        let mut counts = vec![0usize; k];
        for (row, &c) in rows.chunks(dim).zip(&assign) {
            counts[c] += 1;
            for (s, &x) in sums[c * dim..(c + 1) * dim].iter_mut().zip(row) {
                *s += x as f64;
            }
        }
        for c in 0..k {
            if counts[c] > 0 {
                for d in 0..dim {
                    centroids[c * dim + d] = sums[c * dim + d] / counts[c] as f64;
                }
            }
        }
    }
    assign
}

/// The mean row of each class (`labels` in 0..k), `[k, dim]`.
pub fn class_centroids(rows: &[f32], dim: usize, labels: &[u32], k: usize) -> Vec<f64> {
    let mut sums = vec![0.0; k * dim];
    let mut counts = vec![0usize; k];
    for (row, &y) in rows.chunks(dim).zip(labels) {
        let y = y as usize;
        counts[y] += 1;
        for (s, &x) in sums[y * dim..(y + 1) * dim].iter_mut().zip(row) {
            *s += x as f64;
        }
    }
    for c in 0..k {
        for d in 0..dim {
            sums[c * dim + d] /= counts[c].max(1) as f64;
        }
    }
    sums
}

fn pairs(n: usize) -> f64 {
    (n as f64) * (n as f64 - 1.0) / 2.0
}

/// Adjusted Rand index of two labelings of the same items: 1 for the same
/// partition (whatever the label names), about 0 for chance, negative below.
pub fn adjusted_rand_index(a: &[usize], b: &[usize]) -> f64 {
    use std::collections::HashMap;
    let n = a.len();
    let mut table: HashMap<(usize, usize), usize> = HashMap::new();
    let (mut rows, mut cols): (HashMap<usize, usize>, HashMap<usize, usize>) =
        (HashMap::new(), HashMap::new());
    for (&x, &y) in a.iter().zip(b) {
        *table.entry((x, y)).or_default() += 1;
        *rows.entry(x).or_default() += 1;
        *cols.entry(y).or_default() += 1;
    }
    let index: f64 = table.values().map(|&v| pairs(v)).sum();
    let sum_a: f64 = rows.values().map(|&v| pairs(v)).sum();
    let sum_b: f64 = cols.values().map(|&v| pairs(v)).sum();
    let expected = sum_a * sum_b / pairs(n).max(f64::MIN_POSITIVE);
    let max = (sum_a + sum_b) / 2.0;
    if (max - expected).abs() < 1e-12 {
        // Both labelings trivial (one cluster, or all singletons) and equal.
        return 1.0;
    }
    (index - expected) / (max - expected)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ari_on_cases_computed_by_hand() {
        // Identical partitions, whatever the names: 1.
        assert_eq!(adjusted_rand_index(&[0, 0, 1, 1], &[5, 5, 3, 3]), 1.0);
        // {01}{23} vs {01}{2}{3}: index 1, expected 2*1/6, max 3/2 -> 4/7.
        let v = adjusted_rand_index(&[0, 0, 1, 1], &[0, 0, 1, 2]);
        assert!((v - 4.0 / 7.0).abs() < 1e-12, "{v}");
        // {01}{23} vs {02}{13}: index 0, expected 2/3, max 2 -> -1/2.
        let v = adjusted_rand_index(&[0, 0, 1, 1], &[0, 1, 0, 1]);
        assert!((v + 0.5).abs() < 1e-12, "{v}");
    }

    #[test]
    fn kmeans_from_class_centroids_recovers_separated_classes() {
        // Two tight groups in 2-D, one point of class 1 in class 0's group.
        let rows = [0.0, 0.0, 0.1, 0.0, 0.0, 0.1, 5.0, 5.0, 5.1, 5.0, 0.05, 0.05];
        let labels = [0, 0, 0, 1, 1, 1];
        let centroids = class_centroids(&rows, 2, &labels, 2);
        assert!((centroids[0] - 1.0 / 30.0).abs() < 1e-6);
        let clusters = kmeans(&rows, 2, &centroids, 50);
        assert_eq!(clusters, vec![0, 0, 0, 1, 1, 0]);
        let truth: Vec<usize> = labels.iter().map(|&l| l as usize).collect();
        assert!(adjusted_rand_index(&truth, &clusters) < 1.0);
    }
}
