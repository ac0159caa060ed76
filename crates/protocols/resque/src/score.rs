//! RESQUE's two scores (Sangarya & Kim, AAAI 2025), on host rows of a
//! frozen model's activations.

use reusebench_core::metrics::clustering::{adjusted_rand_index, class_centroids, kmeans};

/// arccos(clip(⟨u, v⟩ / (|u| |v|), −1, 1)) / π: 0 for the same direction,
/// 1 for opposite ones. Computed as 2·atan2(|û − v̂|, |û + v̂|) / π (Kahan),
/// the same angle without arccos's rounding near 0 and π: identical vectors
/// give exactly 0, opposite ones exactly 1. Two zero vectors are the same
/// (0); one zero vector is orthogonal to anything (0.5).
pub fn angle(u: &[f64], v: &[f64]) -> f64 {
    let norm = |w: &[f64]| w.iter().map(|a| a * a).sum::<f64>().sqrt();
    let (nu, nv) = (norm(u), norm(v));
    match (nu > 0.0, nv > 0.0) {
        (false, false) => 0.0,
        (true, true) => {
            let (mut diff, mut sum) = (0.0, 0.0);
            for (a, b) in u.iter().zip(v) {
                let (a, b) = (a / nu, b / nv);
                diff += (a - b) * (a - b);
                sum += (a + b) * (a + b);
            }
            2.0 * diff.sqrt().atan2(sum.sqrt()) / std::f64::consts::PI
        }
        _ => 0.5,
    }
}

/// Per class, the sum of its rows (`[n, dim]`, labels in 0..k).
fn class_sums(rows: &[f32], dim: usize, labels: &[u32], k: usize) -> Vec<Vec<f64>> {
    let mut sums = vec![vec![0.0; dim]; k];
    for (row, &y) in rows.chunks(dim).zip(labels) {
        for (s, &x) in sums[y as usize].iter_mut().zip(row) {
            *s += x as f64;
        }
    }
    sums
}

/// RESQUE_dist: for every class present in both sets, the angle between
/// the sum of its clean activation vectors and the sum of its shifted ones;
/// the mean over those classes.
pub fn resque_dist(
    clean: &[f32],
    clean_labels: &[u32],
    shifted: &[f32],
    shifted_labels: &[u32],
    dim: usize,
    k: usize,
) -> f64 {
    let (u, v) = (
        class_sums(clean, dim, clean_labels, k),
        class_sums(shifted, dim, shifted_labels, k),
    );
    let present = |labels: &[u32], c: usize| labels.iter().any(|&y| y as usize == c);
    let angles: Vec<f64> = (0..k)
        .filter(|&c| present(clean_labels, c) && present(shifted_labels, c))
        .map(|c| angle(&u[c], &v[c]))
        .collect();
    angles.iter().sum::<f64>() / angles.len().max(1) as f64
}

/// RESQUE_task: 1 − ARI between the labels and k-means with k = the number
/// of classes, seeded at the true class centroids.
pub fn resque_task(features: &[f32], dim: usize, labels: &[u32], k: usize) -> f64 {
    let centroids = class_centroids(features, dim, labels, k);
    let clusters = kmeans(features, dim, &centroids, 100);
    let truth: Vec<usize> = labels.iter().map(|&y| y as usize).collect();
    1.0 - adjusted_rand_index(&truth, &clusters)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn angle_on_hand_vectors() {
        // Identical: 0; opposite: 1 (exactly).
        assert_eq!(angle(&[1.0, 2.0], &[1.0, 2.0]), 0.0);
        assert_eq!(angle(&[1.0, 2.0], &[-1.0, -2.0]), 1.0);
        // Parallel, another length: 0 up to rounding.
        assert!(angle(&[1.0, 2.0], &[2.0, 4.0]) < 1e-12);
        assert!((angle(&[1.0, 0.0], &[0.0, 3.0]) - 0.5).abs() < 1e-12);
        assert!((angle(&[1.0, 0.0], &[1.0, 1.0]) - 0.25).abs() < 1e-12);
        assert_eq!(angle(&[0.0, 0.0], &[0.0, 0.0]), 0.0);
    }

    #[test]
    fn resque_dist_is_zero_without_shift_and_grows_with_it() {
        let clean = [1.0, 0.0, 2.0, 0.0, 0.0, 1.0, 0.0, 3.0];
        let labels = [0, 0, 1, 1];
        assert_eq!(resque_dist(&clean, &labels, &clean, &labels, 2, 2), 0.0);
        // Class 0 turned by 90°, class 1 kept: mean of 0.5 and 0.
        let shifted = [0.0, 1.0, 0.0, 2.0, 0.0, 1.0, 0.0, 3.0];
        let v = resque_dist(&clean, &labels, &shifted, &labels, 2, 2);
        assert!((v - 0.25).abs() < 1e-12, "{v}");
    }

    #[test]
    fn resque_task_is_zero_for_separated_classes_and_high_for_mixed_ones() {
        let separated = [0.0, 0.0, 0.1, 0.1, 9.0, 9.0, 9.1, 9.1];
        assert_eq!(resque_task(&separated, 2, &[0, 0, 1, 1], 2), 0.0);
        // Labels unrelated to where the points are.
        let mixed = [0.0, 0.0, 9.0, 9.0, 0.1, 0.1, 9.1, 9.1];
        assert!(resque_task(&mixed, 2, &[0, 0, 1, 1], 2) > 1.0);
    }
}
