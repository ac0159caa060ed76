//! Label-shift estimators on a frozen classifier's posteriors: the class
//! prior moves, p(x|y) does not. Every function works on host rows of
//! probabilities (`[n, classes]`, row-major, f64), so a protocol that has
//! cached a deployed model's outputs estimates and corrects without running
//! the model again.
//!
//! - [`bayes_correct`]: p_t(y|x) ∝ p_s(y|x) · π_t(y) / π_s(y).
//! - [`em_prior`]: Saerens, Latinne & Decaestecker (2002), EM on unlabelled
//!   target posteriors.
//! - [`bbse_prior`]: black-box shift estimation (Lipton, Wang & Smola 2018)
//!   from the joint confusion matrix of hard predictions on source data.

/// Probabilities of each row of `logits` (`[n, classes]`), in f64.
pub fn softmax_rows(logits: &[f32], classes: usize) -> Vec<f64> {
    let mut out = Vec::with_capacity(logits.len());
    for row in logits.chunks(classes) {
        let max = row.iter().fold(f32::NEG_INFINITY, |m, &v| m.max(v)) as f64;
        let start = out.len();
        let mut sum = 0.0;
        for &v in row {
            let e = (v as f64 - max).exp();
            sum += e;
            out.push(e);
        }
        for p in &mut out[start..] {
            *p /= sum;
        }
    }
    out
}

/// `probs` re-weighted for a new class prior: each row times
/// `target[y] / source[y]`, renormalised. A row whose weighted mass is zero
/// (the target gives zero mass to every class the row supports) is left as
/// it was.
pub fn bayes_correct(probs: &[f64], classes: usize, source: &[f64], target: &[f64]) -> Vec<f64> {
    let ratio: Vec<f64> = target
        .iter()
        .zip(source)
        .map(|(t, s)| if *s > 0.0 { t / s } else { 0.0 })
        .collect();
    let mut out = Vec::with_capacity(probs.len());
    for row in probs.chunks(classes) {
        let weighted: Vec<f64> = row.iter().zip(&ratio).map(|(p, r)| p * r).collect();
        let sum: f64 = weighted.iter().sum();
        if sum > 0.0 && sum.is_finite() {
            out.extend(weighted.iter().map(|w| w / sum));
        } else {
            out.extend_from_slice(row);
        }
    }
    out
}

/// What [`em_prior`] found.
#[derive(Debug, Clone, PartialEq)]
pub struct EmEstimate {
    pub prior: Vec<f64>,
    /// Iterations run (`max_iter` when it did not converge).
    pub iterations: usize,
    pub converged: bool,
}

/// The target prior by Saerens et al.'s EM: start from `source`; E-step,
/// correct every posterior with the current prior; M-step, the prior is the
/// mean corrected posterior. Stops when no class moves by more than `tol`.
pub fn em_prior(
    probs: &[f64],
    classes: usize,
    source: &[f64],
    max_iter: usize,
    tol: f64,
) -> EmEstimate {
    let n = probs.len() / classes.max(1);
    let mut prior = source.to_vec();
    if n == 0 {
        return EmEstimate {
            prior,
            iterations: 0,
            converged: true,
        };
    }
    for it in 1..=max_iter {
        let corrected = bayes_correct(probs, classes, source, &prior);
        let mut next = vec![0.0; classes];
        for row in corrected.chunks(classes) {
            for (acc, p) in next.iter_mut().zip(row) {
                *acc += p;
            }
        }
        next.iter_mut().for_each(|v| *v /= n as f64);
        let moved = next
            .iter()
            .zip(&prior)
            .map(|(a, b)| (a - b).abs())
            .fold(0.0, f64::max);
        prior = next;
        if moved < tol {
            return EmEstimate {
                prior,
                iterations: it,
                converged: true,
            };
        }
    }
    EmEstimate {
        prior,
        iterations: max_iter,
        converged: false,
    }
}

/// The joint confusion matrix `C[i][j] = P(ŷ = i, y = j)` (row-major
/// `[classes, classes]`) of hard predictions on labelled source data.
pub fn joint_confusion(predictions: &[usize], labels: &[u32], classes: usize) -> Vec<f64> {
    let mut c = vec![0.0; classes * classes];
    let n = predictions.len().max(1) as f64;
    for (&p, &y) in predictions.iter().zip(labels) {
        c[p * classes + y as usize] += 1.0 / n;
    }
    c
}

/// The arg-max class of each row.
pub fn hard_predictions(probs: &[f64], classes: usize) -> Vec<usize> {
    probs
        .chunks(classes)
        .map(|row| {
            row.iter()
                .enumerate()
                .fold((0, f64::NEG_INFINITY), |(bi, bv), (i, &v)| {
                    if v > bv { (i, v) } else { (bi, bv) }
                })
                .0
        })
        .collect()
}

/// The target prior by BBSE: solve `C w = μ` for the importance weights
/// `w(y) = π_t(y) / π_s(y)`, with `μ` the distribution of hard predictions on
/// the target data and `C` the source joint confusion. The source prior is
/// `C`'s column sums. Negative weights (estimation noise) are clipped to 0
/// and the prior renormalised; a tiny ridge keeps a singular `C` solvable.
pub fn bbse_prior(confusion: &[f64], target_predictions: &[f64], classes: usize) -> Vec<f64> {
    let k = classes;
    // Normal equations (CᵀC + εI) w = Cᵀμ: C is square, so this is the
    // plain solution when C is well conditioned and a least-squares one
    // when it is not.
    let mut a = vec![0.0; k * k];
    let mut b = vec![0.0; k];
    for i in 0..k {
        for j in 0..k {
            a[i * k + j] = (0..k)
                .map(|r| confusion[r * k + i] * confusion[r * k + j])
                .sum();
        }
        b[i] = (0..k)
            .map(|r| confusion[r * k + i] * target_predictions[r])
            .sum();
    }
    let trace: f64 = (0..k).map(|i| a[i * k + i]).sum();
    let ridge = 1e-10 * trace.max(1e-300);
    (0..k).for_each(|i| a[i * k + i] += ridge);
    let w = solve(a, b, k);
    let source: Vec<f64> = (0..k)
        .map(|j| (0..k).map(|i| confusion[i * k + j]).sum())
        .collect();
    let mut prior: Vec<f64> = w
        .iter()
        .zip(&source)
        .map(|(w, s)| (w.max(0.0)) * s)
        .collect();
    let sum: f64 = prior.iter().sum();
    if sum > 0.0 && sum.is_finite() {
        prior.iter_mut().for_each(|p| *p /= sum);
        prior
    } else {
        source
    }
}

/// Gaussian elimination with partial pivoting on a small dense system.
fn solve(mut a: Vec<f64>, mut b: Vec<f64>, k: usize) -> Vec<f64> {
    for col in 0..k {
        let pivot = (col..k)
            .max_by(|&x, &y| a[x * k + col].abs().total_cmp(&a[y * k + col].abs()))
            .unwrap_or(col);
        if pivot != col {
            for j in 0..k {
                a.swap(col * k + j, pivot * k + j);
            }
            b.swap(col, pivot);
        }
        let d = a[col * k + col];
        if d.abs() < 1e-300 {
            continue;
        }
        for row in col + 1..k {
            let f = a[row * k + col] / d;
            if f != 0.0 {
                for j in col..k {
                    a[row * k + j] -= f * a[col * k + j];
                }
                b[row] -= f * b[col];
            }
        }
    }
    let mut x = vec![0.0; k];
    for row in (0..k).rev() {
        let s: f64 = (row + 1..k).map(|j| a[row * k + j] * x[j]).sum();
        let d = a[row * k + row];
        x[row] = if d.abs() < 1e-300 {
            0.0
        } else {
            (b[row] - s) / d
        };
    }
    x
}

/// KL(p ‖ q) in nats; terms with p = 0 add nothing, q is floored at 1e-12
/// so a predicted zero is a large finite penalty, not infinity.
pub fn kl_divergence(p: &[f64], q: &[f64]) -> f64 {
    p.iter()
        .zip(q)
        .filter(|(p, _)| **p > 0.0)
        .map(|(p, q)| p * (p / q.max(1e-12)).ln())
        .sum()
}

/// The class proportions of `labels` over `classes` classes.
pub fn class_proportions(labels: impl IntoIterator<Item = u32>, classes: usize) -> Vec<f64> {
    let mut counts = vec![0.0; classes];
    let mut n = 0.0;
    for y in labels {
        counts[y as usize] += 1.0;
        n += 1.0;
    }
    if n > 0.0 {
        counts.iter_mut().for_each(|c| *c /= n);
    }
    counts
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng};
    use rand_chacha::ChaCha8Rng;

    /// Three classes with fixed 1-D Gaussian class conditionals p(x|y).
    const MEANS: [f64; 3] = [-1.5, 0.0, 1.5];

    fn likelihood(x: f64, y: usize) -> f64 {
        (-(x - MEANS[y]).powi(2) / 2.0).exp()
    }

    /// The posterior under `prior` at x (the normal constant cancels).
    fn posterior(x: f64, prior: &[f64]) -> Vec<f64> {
        let w: Vec<f64> = (0..3).map(|y| likelihood(x, y) * prior[y]).collect();
        let s: f64 = w.iter().sum();
        w.iter().map(|v| v / s).collect()
    }

    fn sample(prior: &[f64], n: usize, rng: &mut ChaCha8Rng) -> (Vec<f64>, Vec<u32>) {
        let (mut xs, mut ys) = (Vec::new(), Vec::new());
        for _ in 0..n {
            let u: f64 = rng.random();
            let y = if u < prior[0] {
                0
            } else if u < prior[0] + prior[1] {
                1
            } else {
                2
            };
            // Box-Muller.
            let (a, b): (f64, f64) = (rng.random::<f64>().max(1e-300), rng.random());
            let z = (-2.0 * a.ln()).sqrt() * (std::f64::consts::TAU * b).cos();
            xs.push(MEANS[y] + z);
            ys.push(y as u32);
        }
        (xs, ys)
    }

    #[test]
    fn bayes_correction_with_the_true_prior_does_not_lower_the_expected_log_likelihood() {
        let source = [1.0 / 3.0; 3];
        for target in [[0.7, 0.2, 0.1], [0.05, 0.05, 0.9], [1.0 / 3.0; 3]] {
            // E_target[log p(y|x)] by quadrature over x for each class.
            let (mut plain, mut corrected) = (0.0, 0.0);
            let dx = 0.001;
            let mut x = -10.0;
            while x < 10.0 {
                let p_s = posterior(x, &source);
                let p_c = bayes_correct(&p_s, 3, &source, &target);
                for y in 0..3 {
                    let density =
                        target[y] * likelihood(x, y) / (std::f64::consts::TAU).sqrt() * dx;
                    plain += density * p_s[y].ln();
                    corrected += density * p_c[y].ln();
                }
                x += dx;
            }
            assert!(
                corrected >= plain - 1e-9,
                "target {target:?}: corrected {corrected} < plain {plain}"
            );
            // And the corrected posterior is the target's own posterior.
            let p_c = bayes_correct(&posterior(0.3, &source), 3, &source, &target);
            let p_t = posterior(0.3, &target);
            for (a, b) in p_c.iter().zip(&p_t) {
                assert!((a - b).abs() < 1e-12);
            }
        }
        // With a skewed target the gain is strict.
        let skewed = [0.05, 0.05, 0.9];
        let p = posterior(0.5, &source);
        assert!(bayes_correct(&p, 3, &source, &skewed)[2] > p[2]);
    }

    #[test]
    fn em_recovers_the_true_prior_on_a_mixture() {
        let source = [1.0 / 3.0; 3];
        let truth = [0.6, 0.3, 0.1];
        let mut rng = ChaCha8Rng::seed_from_u64(7);
        let (xs, _) = sample(&truth, 40_000, &mut rng);
        let probs: Vec<f64> = xs.iter().flat_map(|&x| posterior(x, &source)).collect();
        let est = em_prior(&probs, 3, &source, 1000, 1e-9);
        assert!(est.converged, "{est:?}");
        for (e, t) in est.prior.iter().zip(&truth) {
            assert!((e - t).abs() < 0.02, "{:?} vs {truth:?}", est.prior);
        }
        // No shift: EM stays at the source prior.
        let (xs, _) = sample(&source, 40_000, &mut rng);
        let probs: Vec<f64> = xs.iter().flat_map(|&x| posterior(x, &source)).collect();
        let est = em_prior(&probs, 3, &source, 1000, 1e-9);
        for e in &est.prior {
            assert!((e - 1.0 / 3.0).abs() < 0.02, "{:?}", est.prior);
        }
    }

    #[test]
    fn bbse_recovers_the_true_prior_on_a_mixture() {
        let source = [1.0 / 3.0; 3];
        let truth = [0.1, 0.25, 0.65];
        let mut rng = ChaCha8Rng::seed_from_u64(3);
        let (xs, ys) = sample(&source, 40_000, &mut rng);
        let probs: Vec<f64> = xs.iter().flat_map(|&x| posterior(x, &source)).collect();
        let confusion = joint_confusion(&hard_predictions(&probs, 3), &ys, 3);
        let (xt, _) = sample(&truth, 40_000, &mut rng);
        let pt: Vec<f64> = xt.iter().flat_map(|&x| posterior(x, &source)).collect();
        let mu = class_proportions(hard_predictions(&pt, 3).iter().map(|&p| p as u32), 3);
        let est = bbse_prior(&confusion, &mu, 3);
        for (e, t) in est.iter().zip(&truth) {
            assert!((e - t).abs() < 0.03, "{est:?} vs {truth:?}");
        }
    }

    #[test]
    fn bbse_on_a_perfect_classifier_is_the_prediction_distribution() {
        // C diagonal: w = μ / π_s, so the prior is μ itself.
        let c = [0.5, 0.0, 0.0, 0.5];
        let est = bbse_prior(&c, &[0.8, 0.2], 2);
        assert!((est[0] - 0.8).abs() < 1e-9 && (est[1] - 0.2).abs() < 1e-9);
    }

    #[test]
    fn kl_and_softmax_by_hand() {
        assert_eq!(kl_divergence(&[0.5, 0.5], &[0.5, 0.5]), 0.0);
        let kl = kl_divergence(&[1.0, 0.0], &[0.5, 0.5]);
        assert!((kl - 2f64.ln()).abs() < 1e-12);
        let p = softmax_rows(&[0.0, 0.0, 1000.0, 0.0], 2);
        assert_eq!(p, vec![0.5, 0.5, 1.0, 0.0]);
        assert_eq!(
            class_proportions([0, 0, 1, 2], 4),
            vec![0.5, 0.25, 0.25, 0.0]
        );
    }
}
