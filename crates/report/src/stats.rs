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
}
