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
