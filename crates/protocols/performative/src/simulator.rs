//! The performative simulator: class proportions that answer the deployed
//! model's per-class accuracy, and the samples each round draws from the
//! pool.
//!
//! Round 0's proportions are Dirichlet(α·1). After round t the next ones are
//! softmax(sign · acc_t / τ), where acc_t(y) is the deployed method's
//! accuracy on class y of the round's test sample (a class absent from it
//! gets the mean of the others). sign = −1: the classes the model gets wrong
//! are sampled more (adversarial); +1: the ones it gets right.
//!
//! A round's sample of n images gets `min_per_class` of each class first
//! and the rest by largest remainder of n·p (so the counts sum to n exactly).
//! Each class draws its count from its part of the pool: without
//! replacement while the part holds enough, and — with `replace: auto`, the
//! default — every image once plus the remainder with replacement when it
//! does not (small pools: a class at 60% of 2000 test images needs 1200 from
//! a part that may hold 50). `replace: never` makes that an error, which
//! validation reports up front; `always` draws every image with replacement.

use rand::Rng;
use rand::seq::SliceRandom;
use rand_chacha::ChaCha8Rng;
use reusebench_data::shift::standard_normal;
use serde::{Deserialize, Serialize};

/// How a round's sample is drawn from the pool.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Replace {
    /// As the authors' code: `min_per_class` of every class first, then
    /// one image at a time, its class drawn from the proportions, without
    /// replacement; a class whose part is used up gets probability 1e-4
    /// (renormalised: the rest goes to the others in proportion). A round can never
    /// take more than the pool's part holds in all.
    #[default]
    Exhaust,
    /// Counts by largest remainder; without replacement while the class's
    /// part holds enough, then with.
    Auto,
    /// Never: a draw larger than the part is an error.
    Never,
    /// Every image with replacement.
    Always,
}

/// A Gamma(shape, 1) draw (Marsaglia & Tsang 2000; shape < 1 by the
/// boost Gamma(a) = Gamma(a + 1) · U^(1/a)).
fn gamma(shape: f64, rng: &mut ChaCha8Rng) -> f64 {
    if shape < 1.0 {
        let u: f64 = rng.random::<f64>().max(f64::MIN_POSITIVE);
        return gamma(shape + 1.0, rng) * u.powf(1.0 / shape);
    }
    let d = shape - 1.0 / 3.0;
    let c = 1.0 / (9.0 * d).sqrt();
    loop {
        let x = standard_normal(rng);
        let v = (1.0 + c * x).powi(3);
        if v <= 0.0 {
            continue;
        }
        let u: f64 = rng.random();
        if u.ln() < 0.5 * x * x + d - d * v + d * v.ln() {
            return d * v;
        }
    }
}

/// Round 0's proportions: a Dirichlet(α, ..., α) draw.
pub fn dirichlet(alpha: f64, classes: usize, rng: &mut ChaCha8Rng) -> Vec<f64> {
    let g: Vec<f64> = (0..classes).map(|_| gamma(alpha, rng)).collect();
    let sum: f64 = g.iter().sum();
    g.iter().map(|v| v / sum).collect()
}

/// The next round's proportions: softmax(sign · acc / τ) with `acc` in
/// [0, 1]; `None` entries (classes absent from the round) take the mean of
/// the present ones.
pub fn next_proportions(acc: &[Option<f64>], temperature: f64, sign: f64) -> Vec<f64> {
    let filled = fill_missing(acc);
    let logits: Vec<f64> = filled.iter().map(|a| sign * a / temperature).collect();
    let max = logits.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    let e: Vec<f64> = logits.iter().map(|l| (l - max).exp()).collect();
    let sum: f64 = e.iter().sum();
    e.iter().map(|v| v / sum).collect()
}

/// Per-class values with absent classes set to the mean of the present
/// ones (0 when none is present).
pub fn fill_missing(acc: &[Option<f64>]) -> Vec<f64> {
    let present: Vec<f64> = acc.iter().flatten().copied().collect();
    let mean = if present.is_empty() {
        0.0
    } else {
        present.iter().sum::<f64>() / present.len() as f64
    };
    acc.iter().map(|a| a.unwrap_or(mean)).collect()
}

/// Counts per class summing to `n`: `min_per_class` each, the rest by
/// largest remainder of the proportions (ties to the lower class index).
pub fn allocate(n: usize, proportions: &[f64], min_per_class: usize) -> Vec<usize> {
    let k = proportions.len();
    let base = min_per_class * k;
    let rest = n.saturating_sub(base);
    let exact: Vec<f64> = proportions.iter().map(|p| p * rest as f64).collect();
    let mut counts: Vec<usize> = exact.iter().map(|e| e.floor() as usize).collect();
    let mut left = rest - counts.iter().sum::<usize>().min(rest);
    let mut order: Vec<usize> = (0..k).collect();
    order.sort_by(|&a, &b| {
        let (ra, rb) = (exact[a] - exact[a].floor(), exact[b] - exact[b].floor());
        rb.total_cmp(&ra).then(a.cmp(&b))
    });
    for &c in order.iter().cycle() {
        if left == 0 {
            break;
        }
        counts[c] += 1;
        left -= 1;
    }
    counts.iter().map(|c| c + min_per_class).collect()
}

/// The proportions as the authors' code uses them: rounded to
/// ⌈log10 k⌉ + 2 decimals (3 for CIFAR-10), so a class whose share rounds
/// to zero is drawn only for its per-class minimum.
pub fn rounded(proportions: &[f64]) -> Vec<f64> {
    let digits = (proportions.len().max(1) as f64).log10().ceil() as i32 + 2;
    let scale = 10f64.powi(digits);
    proportions
        .iter()
        .map(|p| (p * scale).round() / scale)
        .collect()
}

/// A round's sample drawn as [`Replace::Exhaust`] says: pool indices,
/// `min_per_class` of every class first. Errors when the pool's part
/// cannot serve `n` (validation checks this before anything runs).
pub fn draw_exhaust(
    parts: &[Vec<usize>],
    n: usize,
    proportions: &[f64],
    min_per_class: usize,
    rng: &mut ChaCha8Rng,
) -> Result<Vec<usize>, String> {
    let total: usize = parts.iter().map(Vec::len).sum();
    if n > total {
        return Err(format!(
            "{n} images asked of a part of the pool that holds {total}"
        ));
    }
    // Each class's images in a random order: drawing without replacement
    // is taking the next one.
    let mut left: Vec<Vec<usize>> = parts
        .iter()
        .map(|p| {
            let mut v = p.clone();
            v.shuffle(rng);
            v
        })
        .collect();
    let mut out = Vec::with_capacity(n);
    for (c, part) in left.iter_mut().enumerate() {
        if part.len() < min_per_class {
            return Err(format!(
                "class {c} holds {} images, fewer than min_per_class {min_per_class}",
                part.len()
            ));
        }
        out.extend(part.drain(..min_per_class));
    }
    let mut pdf: Vec<f64> = rounded(proportions);
    let sum: f64 = pdf.iter().sum();
    if sum <= 0.0 {
        pdf = vec![1.0; parts.len()];
    }
    while out.len() < n {
        let total: f64 = pdf.iter().sum();
        let mut u = rng.random::<f64>() * total;
        let mut c = pdf.len() - 1;
        for (i, &p) in pdf.iter().enumerate() {
            if u < p {
                c = i;
                break;
            }
            u -= p;
        }
        match left[c].pop() {
            Some(i) => out.push(i),
            // Used up. The authors give it weight 1e-4 and draw again,
            // which picks the others in proportion to their shares: the
            // same as weight 0 here. Classes whose share rounded to 0 get
            // a small one once every other class is used up.
            None => {
                pdf[c] = 0.0;
                if pdf.iter().sum::<f64>() <= 0.0 {
                    for (p, l) in pdf.iter_mut().zip(&left) {
                        *p = if l.is_empty() { 0.0 } else { 1e-4 };
                    }
                }
            }
        }
    }
    Ok(out)
}

/// A class's count drawn from its part of the pool (`part`: pool indices).
pub fn draw(
    part: &[usize],
    count: usize,
    replace: Replace,
    rng: &mut ChaCha8Rng,
) -> Result<Vec<usize>, String> {
    if count == 0 {
        return Ok(Vec::new());
    }
    if part.is_empty() {
        return Err(format!("{count} images asked of an empty class"));
    }
    let with_replacement = |n: usize, rng: &mut ChaCha8Rng| -> Vec<usize> {
        (0..n)
            .map(|_| part[rng.random_range(0..part.len())])
            .collect()
    };
    match replace {
        Replace::Always => Ok(with_replacement(count, rng)),
        Replace::Exhaust => unreachable!("exhaust draws a whole round (draw_exhaust)"),
        Replace::Never | Replace::Auto if count <= part.len() => {
            let mut v = part.to_vec();
            let (chosen, _) = v.partial_shuffle(rng, count);
            Ok(chosen.to_vec())
        }
        Replace::Never => Err(format!(
            "{count} images asked of a class whose part of the pool holds {} (replace: never)",
            part.len()
        )),
        Replace::Auto => {
            let mut v = part.to_vec();
            v.shuffle(rng);
            v.extend(with_replacement(count - part.len(), rng));
            Ok(v)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn next_proportions_follow_the_formula() {
        let acc = [Some(0.9), Some(0.5), None, Some(0.1)];
        let (tau, sign) = (0.3, -1.0);
        let p = next_proportions(&acc, tau, sign);
        // The absent class takes the mean accuracy of the others: 0.5.
        let filled = [0.9, 0.5, 0.5, 0.1];
        let z: f64 = filled.iter().map(|a: &f64| (-a / tau).exp()).sum();
        for (got, a) in p.iter().zip(filled) {
            assert!((got - (-a / tau).exp() / z).abs() < 1e-12, "{p:?}");
        }
        assert!((p.iter().sum::<f64>() - 1.0).abs() < 1e-12);
        // Adversarial: the worst class is sampled most; +1 reverses that.
        assert!(p[3] > p[1] && p[1] > p[0]);
        let q = next_proportions(&acc, tau, 1.0);
        assert!(q[0] > q[1] && q[1] > q[3]);
        // A lower temperature sharpens the shift.
        let sharp = next_proportions(&acc, 0.1, -1.0);
        assert!(sharp[3] > p[3]);
    }

    #[test]
    fn dirichlet_draws_are_proportions_near_uniform_for_a_large_alpha() {
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        let p = dirichlet(100.0, 10, &mut rng);
        assert!((p.iter().sum::<f64>() - 1.0).abs() < 1e-12);
        assert!(p.iter().all(|v| (0.05..0.15).contains(v)), "{p:?}");
        // A small α concentrates the mass; the mean of many draws is 1/k.
        let mut mean = [0.0; 4];
        for _ in 0..4000 {
            for (m, v) in mean.iter_mut().zip(dirichlet(0.3, 4, &mut rng)) {
                *m += v / 4000.0;
            }
        }
        assert!(mean.iter().all(|m| (m - 0.25).abs() < 0.02), "{mean:?}");
    }

    #[test]
    fn allocation_sums_to_n_with_the_minimum_per_class() {
        let c = allocate(100, &[0.5, 0.3, 0.2], 0);
        assert_eq!(c, vec![50, 30, 20]);
        let c = allocate(10, &[0.98, 0.01, 0.01], 2);
        assert_eq!(c.iter().sum::<usize>(), 10);
        assert!(c.iter().all(|&v| v >= 2), "{c:?}");
        assert_eq!(c[0], 6);
        // Largest remainders get the leftover units.
        let c = allocate(10, &[1.0 / 3.0; 3], 0);
        assert_eq!(c, vec![4, 3, 3]);
    }

    #[test]
    fn exhaust_draws_without_replacement_and_spills_over() {
        let mut rng = ChaCha8Rng::seed_from_u64(3);
        let parts = vec![
            vec![0, 1, 2],
            vec![10, 11, 12, 13, 14, 15],
            vec![20, 21, 22, 23, 24, 25],
        ];
        // Nearly all the mass on class 0, which holds 3: the rest spills
        // over, nothing is drawn twice, every class gets its minimum.
        let d = draw_exhaust(&parts, 12, &[0.98, 0.01, 0.01], 1, &mut rng).unwrap();
        assert_eq!(d.len(), 12);
        let mut u = d.clone();
        u.sort();
        u.dedup();
        assert_eq!(u.len(), 12, "without replacement: {d:?}");
        for c in 0..3 {
            assert!(
                d.iter().any(|i| parts[c].contains(i)),
                "class {c} has its minimum"
            );
        }
        assert!(
            [0, 1, 2].iter().all(|i| d.contains(i)),
            "class 0 used up first: {d:?}"
        );
        // More than the pool holds: refused.
        assert!(draw_exhaust(&parts, 16, &[0.3, 0.3, 0.4], 0, &mut rng).is_err());
        // The proportions are rounded as the authors' code: 3 decimals for 10 classes.
        let r = rounded(&[0.12345; 10]);
        assert!((r[0] - 0.123).abs() < 1e-12);
        // A share of 0.0004 rounds to 0: only the minimum is drawn.
        let mut p = vec![0.9996 / 9.0; 9];
        p.push(0.0004);
        let parts: Vec<Vec<usize>> = (0..10).map(|c| (c * 100..c * 100 + 50).collect()).collect();
        let d = draw_exhaust(&parts, 200, &p, 2, &mut rng).unwrap();
        assert_eq!(d.iter().filter(|&&i| i >= 900).count(), 2);
    }

    #[test]
    fn draws_respect_the_replacement_rule() {
        let mut rng = ChaCha8Rng::seed_from_u64(2);
        let part = [10, 11, 12, 13];
        let d = draw(&part, 3, Replace::Never, &mut rng).unwrap();
        let mut u = d.clone();
        u.sort();
        u.dedup();
        assert_eq!(u.len(), 3, "without replacement: {d:?}");
        assert!(draw(&part, 5, Replace::Never, &mut rng).is_err());
        let d = draw(&part, 9, Replace::Auto, &mut rng).unwrap();
        assert_eq!(d.len(), 9);
        for i in part {
            assert!(d.contains(&i), "auto takes every image once first: {d:?}");
        }
        assert!(d.iter().all(|i| part.contains(i)));
    }
}
