//! Uncertainty over seeds: 95% confidence intervals of a mean (Student's t)
//! and paired comparisons of two methods run on the same seeds.

/// The 97.5% quantile of Student's t with `df` degrees of freedom (the
/// half-width factor of a two-sided 95% interval). Exact table to 30; past
/// that, Cornish-Fisher's expansion around the normal quantile (error
/// below 1e-4 there).
pub fn t_975(df: usize) -> f64 {
    const TABLE: [f64; 30] = [
        12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228, 2.201, 2.179, 2.160,
        2.145, 2.131, 2.120, 2.110, 2.101, 2.093, 2.086, 2.080, 2.074, 2.069, 2.064, 2.060, 2.056,
        2.052, 2.048, 2.045, 2.042,
    ];
    match df {
        0 => f64::NAN,
        1..=30 => TABLE[df - 1],
        _ => {
            let z: f64 = 1.959_964;
            let n = df as f64;
            z + (z.powi(3) + z) / (4.0 * n)
                + (5.0 * z.powi(5) + 16.0 * z.powi(3) + 3.0 * z) / (96.0 * n * n)
        }
    }
}

/// Half-width of the 95% confidence interval of a mean of `n` values
/// with sample standard deviation `std`; NaN below two values.
pub fn ci95_half_width(std: f64, n: usize) -> f64 {
    if n < 2 {
        return f64::NAN;
    }
    t_975(n - 1) * std / (n as f64).sqrt()
}

/// Per-seed differences `method − base` over the seeds both have (in seed
/// order): what a paired comparison averages.
pub fn paired_diffs(
    method: &std::collections::BTreeMap<u64, f64>,
    base: &std::collections::BTreeMap<u64, f64>,
) -> Vec<f64> {
    method
        .iter()
        .filter_map(|(seed, v)| base.get(seed).map(|b| v - b))
        .collect()
}

/// A method against the baseline on the same seeds: the mean of the
/// per-seed differences (method − baseline) and its 95% interval.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Paired {
    pub mean: f64,
    pub half_width: f64,
    pub n: usize,
}

impl Paired {
    pub fn of(diffs: &[f64]) -> Self {
        let n = diffs.len();
        let mean = diffs.iter().sum::<f64>() / n.max(1) as f64;
        let std = if n > 1 {
            (diffs.iter().map(|d| (d - mean).powi(2)).sum::<f64>() / (n - 1) as f64).sqrt()
        } else {
            f64::NAN
        };
        Self {
            mean,
            half_width: ci95_half_width(std, n),
            n,
        }
    }

    /// The interval excludes 0: a paired t-test rejects "no difference" at 5%.
    pub fn significant(&self) -> bool {
        self.half_width.is_finite() && self.mean.abs() > self.half_width
    }
}

/// Pearson's correlation of `x` and `y`; NaN below two points or for a
/// constant series.
pub fn pearson(x: &[f64], y: &[f64]) -> f64 {
    let n = x.len().min(y.len());
    if n < 2 {
        return f64::NAN;
    }
    let (mx, my) = (
        x[..n].iter().sum::<f64>() / n as f64,
        y[..n].iter().sum::<f64>() / n as f64,
    );
    let (mut sxy, mut sxx, mut syy) = (0.0, 0.0, 0.0);
    for i in 0..n {
        let (dx, dy) = (x[i] - mx, y[i] - my);
        sxy += dx * dy;
        sxx += dx * dx;
        syy += dy * dy;
    }
    if sxx == 0.0 || syy == 0.0 {
        return f64::NAN;
    }
    sxy / (sxx * syy).sqrt()
}

/// Ranks from 1, ties sharing their average rank.
pub fn ranks(v: &[f64]) -> Vec<f64> {
    let mut order: Vec<usize> = (0..v.len()).collect();
    order.sort_by(|&a, &b| v[a].total_cmp(&v[b]));
    let mut out = vec![0.0; v.len()];
    let mut i = 0;
    while i < order.len() {
        let mut j = i;
        while j + 1 < order.len() && v[order[j + 1]] == v[order[i]] {
            j += 1;
        }
        let rank = (i + j) as f64 / 2.0 + 1.0;
        for &k in &order[i..=j] {
            out[k] = rank;
        }
        i = j + 1;
    }
    out
}

/// Spearman's rank correlation (Pearson's on average ranks).
pub fn spearman(x: &[f64], y: &[f64]) -> f64 {
    pearson(&ranks(x), &ranks(y))
}

/// A correlation with the 95% percentile bootstrap interval over the
/// points (`resamples` draws with replacement from a fixed seed, so a
/// report is the same every time); NaN bounds where too few resamples
/// give a finite value.
pub fn bootstrap_ci(
    x: &[f64],
    y: &[f64],
    statistic: fn(&[f64], &[f64]) -> f64,
    resamples: usize,
    seed: u64,
) -> (f64, f64, f64) {
    use rand::{Rng, SeedableRng};
    let n = x.len().min(y.len());
    let value = statistic(x, y);
    if n < 3 {
        return (value, f64::NAN, f64::NAN);
    }
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    let mut stats = Vec::with_capacity(resamples);
    let (mut bx, mut by) = (vec![0.0; n], vec![0.0; n]);
    for _ in 0..resamples {
        for i in 0..n {
            let j = rng.random_range(0..n);
            bx[i] = x[j];
            by[i] = y[j];
        }
        let s = statistic(&bx, &by);
        if s.is_finite() {
            stats.push(s);
        }
    }
    if stats.len() < resamples / 2 {
        return (value, f64::NAN, f64::NAN);
    }
    stats.sort_by(f64::total_cmp);
    let at = |q: f64| stats[((stats.len() - 1) as f64 * q).round() as usize];
    (value, at(0.025), at(0.975))
}

/// Least-squares line y = a + b x: (a, b).
pub fn fit_line(x: &[f64], y: &[f64]) -> (f64, f64) {
    let n = x.len().min(y.len()).max(1) as f64;
    let (mx, my) = (x.iter().sum::<f64>() / n, y.iter().sum::<f64>() / n);
    let sxx: f64 = x.iter().map(|v| (v - mx).powi(2)).sum();
    let sxy: f64 = x.iter().zip(y).map(|(a, b)| (a - mx) * (b - my)).sum();
    let b = if sxx > 0.0 { sxy / sxx } else { 0.0 };
    (my - b * mx, b)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn intervals_by_hand() {
        // Two seeds, std 2.83: half-width = 12.706 * 2.83 / sqrt(2) = 25.43.
        assert!((ci95_half_width(2.828_427, 2) - 25.412).abs() < 0.01);
        assert!(ci95_half_width(1.0, 1).is_nan());
        // Past the table the expansion is close to the exact 2.0003 (df 60)
        // and 1.9799 (df 120).
        assert!((t_975(60) - 2.0003).abs() < 2e-4);
        assert!((t_975(120) - 1.9799).abs() < 2e-4);
    }

    #[test]
    fn paired_differences() {
        // Differences 3, 5, 4: mean 4, std 1, half-width 4.303 / sqrt(3) = 2.484.
        let p = Paired::of(&[3.0, 5.0, 4.0]);
        assert!((p.mean - 4.0).abs() < 1e-12 && (p.half_width - 2.4843).abs() < 1e-3);
        assert!(p.significant());
        // Differences straddling 0 are not.
        assert!(!Paired::of(&[-2.0, 3.0, 1.0]).significant());
        assert!(!Paired::of(&[5.0]).significant(), "one pair tells nothing");
    }

    #[test]
    fn correlations_by_hand() {
        let x = [1.0, 2.0, 3.0, 4.0];
        assert!((pearson(&x, &[2.0, 4.0, 6.0, 8.0]) - 1.0).abs() < 1e-12);
        assert!((pearson(&x, &[8.0, 6.0, 4.0, 2.0]) + 1.0).abs() < 1e-12);
        // Monotone but not linear: Spearman 1, Pearson below.
        let y = [1.0, 4.0, 9.0, 100.0];
        assert!((spearman(&x, &y) - 1.0).abs() < 1e-12);
        assert!(pearson(&x, &y) < 1.0);
        assert_eq!(ranks(&[3.0, 1.0, 3.0, 2.0]), vec![3.5, 1.0, 3.5, 2.0]);
        assert!(pearson(&x, &[1.0; 4]).is_nan());
        let (a, b) = fit_line(&x, &[3.0, 5.0, 7.0, 9.0]);
        assert!((a - 1.0).abs() < 1e-12 && (b - 2.0).abs() < 1e-12);
    }

    #[test]
    fn bootstrap_intervals_hold_the_value_and_repeat() {
        let x: Vec<f64> = (0..30).map(|i| i as f64).collect();
        let y: Vec<f64> = x.iter().map(|v| v + ((v * 7.0) % 5.0)).collect();
        let (r, lo, hi) = bootstrap_ci(&x, &y, pearson, 500, 1);
        assert!(lo <= r && r <= hi && hi <= 1.0, "{lo} {r} {hi}");
        assert_eq!(bootstrap_ci(&x, &y, pearson, 500, 1), (r, lo, hi));
        let (_, lo, _) = bootstrap_ci(&x[..2], &y[..2], pearson, 500, 1);
        assert!(lo.is_nan());
    }
}
