//! Every query row's dot product with every bank row: the similarity matrix
//! of kNN evaluation, one block of queries at a time.
//!
//! Each product is summed over the feature axis in order (d = 0, 1, …) in
//! f32, starting from -0.0, exactly as `q.iter().zip(b).map(|(x, y)| x * y).sum()`
//! does: the values are bit for bit those of the plain loop, so kNN's
//! neighbours and votes do not change. The speed comes from the layout, not
//! from reordering sums: the bank is stored feature-major once, and a tile of
//! queries × bank rows accumulates in registers, its inner loop running
//! across bank rows (the SIMD lanes), each lane summing in order.
//!
//! Pure Rust without burn: it lives here because this crate is built at
//! opt-level 3 in dev builds too, where the scalar loop ran unoptimised.

/// Queries per tile and bank rows per tile (16 × 4 f32 accumulators fit
/// the 16 vector registers of AVX2).
const QUERY_TILE: usize = 4;
const BANK_TILE: usize = 16;

/// A bank of rows stored feature-major (`values[d * rows + j]` is feature d
/// of row j), built once and used for every block of queries.
pub struct Bank {
    values: Vec<f32>,
    rows: usize,
    dim: usize,
}

impl Bank {
    /// `row_major` holds `rows` rows of `dim` features each.
    pub fn new(row_major: &[f32], dim: usize) -> Self {
        assert!(dim > 0, "a bank row needs at least one feature");
        assert_eq!(
            row_major.len() % dim,
            0,
            "bank length is not a multiple of dim"
        );
        let rows = row_major.len() / dim;
        let mut values = vec![0f32; row_major.len()];
        for (j, row) in row_major.chunks_exact(dim).enumerate() {
            for (d, &v) in row.iter().enumerate() {
                values[d * rows + j] = v;
            }
        }
        Self { values, rows, dim }
    }

    pub fn rows(&self) -> usize {
        self.rows
    }

    /// `out[i * rows + j]` = Σ_d queries[i][d] · bank[j][d], summed in d order,
    /// for every query row i of `queries` (row-major, `dim` features each).
    pub fn dot_products(&self, queries: &[f32], out: &mut [f32]) {
        let (n, dim) = (self.rows, self.dim);
        assert_eq!(
            queries.len() % dim,
            0,
            "query length is not a multiple of dim"
        );
        let q_rows = queries.len() / dim;
        assert_eq!(out.len(), q_rows * n, "output is not queries × bank rows");
        let full_q = q_rows - q_rows % QUERY_TILE;
        let full_b = n - n % BANK_TILE;
        for i0 in (0..full_q).step_by(QUERY_TILE) {
            for j0 in (0..full_b).step_by(BANK_TILE) {
                self.tile(queries, i0, j0, out);
            }
            for i in i0..i0 + QUERY_TILE {
                self.one_by_one(queries, i, full_b..n, out);
            }
        }
        for i in full_q..q_rows {
            self.one_by_one(queries, i, 0..n, out);
        }
    }

    /// QUERY_TILE queries from `i0` against BANK_TILE bank rows from `j0`.
    #[inline(always)]
    fn tile(&self, queries: &[f32], i0: usize, j0: usize, out: &mut [f32]) {
        let (n, dim) = (self.rows, self.dim);
        let mut acc = [[-0.0f32; BANK_TILE]; QUERY_TILE];
        let q: [&[f32]; QUERY_TILE] =
            std::array::from_fn(|t| &queries[(i0 + t) * dim..(i0 + t + 1) * dim]);
        for d in 0..dim {
            let column: &[f32; BANK_TILE] = self.values[d * n + j0..d * n + j0 + BANK_TILE]
                .try_into()
                .expect("a full tile");
            for t in 0..QUERY_TILE {
                let x = q[t][d];
                for (a, &b) in acc[t].iter_mut().zip(column) {
                    *a += x * b;
                }
            }
        }
        for (t, row) in acc.iter().enumerate() {
            let start = (i0 + t) * n + j0;
            out[start..start + BANK_TILE].copy_from_slice(row);
        }
    }

    /// Query `i` against the bank rows in `range`, one product at a time.
    fn one_by_one(
        &self,
        queries: &[f32],
        i: usize,
        range: std::ops::Range<usize>,
        out: &mut [f32],
    ) {
        let (n, dim) = (self.rows, self.dim);
        let q = &queries[i * dim..(i + 1) * dim];
        for j in range {
            let mut s = -0.0f32;
            for (d, &x) in q.iter().enumerate() {
                s += x * self.values[d * n + j];
            }
            out[i * n + j] = s;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A small deterministic generator (the crate has no rand dependency).
    fn values(n: usize, seed: u64) -> Vec<f32> {
        let mut s = seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (0..n)
            .map(|_| {
                s = s
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                ((s >> 40) as f32 / (1u64 << 24) as f32) - 0.5
            })
            .collect()
    }

    #[test]
    fn bit_for_bit_the_plain_loop_with_ragged_tiles() {
        // Sizes off the tile grid on both axes, and a dim of 1.
        for &(q_rows, n, dim) in &[(9, 37, 13), (4, 16, 8), (3, 5, 1), (1, 40, 160), (0, 7, 3)] {
            let queries = values(q_rows * dim, 1 + dim as u64);
            let bank_rows = values(n * dim, 2 + n as u64);
            let bank = Bank::new(&bank_rows, dim);
            assert_eq!(bank.rows(), n);
            let mut out = vec![f32::NAN; q_rows * n];
            bank.dot_products(&queries, &mut out);
            for i in 0..q_rows {
                for j in 0..n {
                    let q = &queries[i * dim..(i + 1) * dim];
                    let b = &bank_rows[j * dim..(j + 1) * dim];
                    let plain: f32 = q.iter().zip(b).map(|(x, y)| x * y).sum();
                    assert_eq!(
                        out[i * n + j].to_bits(),
                        plain.to_bits(),
                        "query {i}, bank row {j} ({q_rows}x{n}, dim {dim})"
                    );
                }
            }
        }
    }

    #[test]
    fn negative_zero_as_the_plain_sum() {
        // Products of -0.0 only: the plain f32 sum keeps the sign.
        let bank = Bank::new(&[0.0, 0.0], 2);
        let mut out = [1.0f32];
        bank.dot_products(&[-1.0, -1.0], &mut out);
        let plain: f32 = [-0.0f32, -0.0].iter().sum();
        assert_eq!(out[0].to_bits(), plain.to_bits());
    }
}
