//! Host rows of an inference pass (logits or features), what the feature
//! cache stores and every metric reads.

/// Rows of an inference pass: `values` is `[rows, dim]`, row-major.
#[derive(Debug, Clone)]
pub struct Rows {
    pub values: Vec<f32>,
    pub dim: usize,
}

impl Rows {
    pub fn row(&self, i: usize) -> &[f32] {
        &self.values[i * self.dim..(i + 1) * self.dim]
    }
    pub fn len(&self) -> usize {
        self.values.len() / self.dim.max(1)
    }
    pub fn is_empty(&self) -> bool {
        self.values.is_empty()
    }
}
