//! How training reports progress, without knowing whether a terminal,
//! a log file or nothing at all is listening.

pub trait Progress: Sync {
    /// A new stage starts (e.g. "task 2/5 · ft · epoch 1/3") with this many batches.
    fn begin(&self, _stage: &str, _batches: usize) {}
    /// One batch done, with its loss.
    fn batch(&self, _loss: f32) {}
    /// The stage ended.
    fn end(&self) {}
    /// A free-form line worth showing (a finished evaluation, a saved file).
    fn note(&self, _message: &str) {}
}

/// Reports nothing.
pub struct NoProgress;
impl Progress for NoProgress {}

/// Wall time per phase of a cell (training, evaluation, kNN, …), for the
/// line that says where a cell's time went. A note, never a result row:
/// rows stay identical from run to run, and times do not.
#[derive(Debug, Default)]
pub struct PhaseTimes {
    phases: Vec<(&'static str, f64)>,
}

impl PhaseTimes {
    /// Adds the time since `started` to `phase` (phases keep their first-seen order).
    pub fn add(&mut self, phase: &'static str, started: std::time::Instant) {
        self.add_seconds(phase, started.elapsed().as_secs_f64());
    }

    /// Adds `seconds` to `phase`.
    pub fn add_seconds(&mut self, phase: &'static str, seconds: f64) {
        match self.phases.iter_mut().find(|(p, _)| *p == phase) {
            Some((_, total)) => *total += seconds,
            None => self.phases.push((phase, seconds)),
        }
    }

    /// Seconds spent in `phase` so far (0 if never timed).
    pub fn seconds(&self, phase: &str) -> f64 {
        self.phases
            .iter()
            .find(|(p, _)| *p == phase)
            .map_or(0.0, |(_, s)| *s)
    }

    /// Every phase with its seconds, in first-seen order.
    pub fn phases(&self) -> impl Iterator<Item = (&'static str, f64)> + '_ {
        self.phases.iter().copied()
    }

    /// `time: train 12.3 s (80 %), evaluation 2.0 s (13 %), …`
    pub fn summary(&self) -> String {
        let total: f64 = self.phases.iter().map(|(_, s)| s).sum();
        let parts: Vec<String> = self
            .phases
            .iter()
            .map(|(p, s)| format!("{p} {s:.2} s ({:.0} %)", 100.0 * s / total.max(1e-9)))
            .collect();
        format!("time: {}", parts.join(", "))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn phases_accumulate_in_first_seen_order() {
        let mut times = PhaseTimes::default();
        let t = std::time::Instant::now();
        times.add("train", t);
        times.add("evaluation", t);
        times.add("train", t);
        // Train was added twice, the second time later than evaluation.
        assert!(times.seconds("train") >= times.seconds("evaluation"));
        assert_eq!(times.seconds("knn"), 0.0);
        let s = times.summary();
        assert!(s.starts_with("time: train "), "{s}");
        assert!(
            s.find("train").unwrap() < s.find("evaluation").unwrap(),
            "{s}"
        );
        assert_eq!(s.matches("train").count(), 1, "{s}");
    }
}
