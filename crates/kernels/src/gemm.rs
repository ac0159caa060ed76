//! A bounds-checked, safe entry to the `gemm` crate's f32 matrix product
//! (the one burn-flex uses), for kernels that write into buffers they own.

/// A read-only matrix view: element (i, j) at `data[i * rs + j * cs]`.
#[derive(Clone, Copy)]
pub(crate) struct MatRef<'a> {
    pub data: &'a [f32],
    pub rs: usize,
    pub cs: usize,
}

impl<'a> MatRef<'a> {
    pub(crate) fn row_major(data: &'a [f32], cols: usize) -> Self {
        Self {
            data,
            rs: cols,
            cs: 1,
        }
    }

    pub(crate) fn transposed(self) -> Self {
        Self {
            data: self.data,
            rs: self.cs,
            cs: self.rs,
        }
    }

    fn covers(&self, rows: usize, cols: usize) -> bool {
        rows == 0 || cols == 0 || (rows - 1) * self.rs + (cols - 1) * self.cs < self.data.len()
    }
}

/// `dst[m × n] (row-major, row stride dst_rs) = [dst +] lhs[m × k] · rhs[k × n]`,
/// on the calling thread (callers parallelise over images or parts).
pub(crate) fn matmul(
    dst: &mut [f32],
    dst_rs: usize,
    accumulate: bool,
    lhs: MatRef<'_>,
    rhs: MatRef<'_>,
    mnk: [usize; 3],
) {
    matmul_with(
        dst,
        dst_rs,
        accumulate,
        lhs,
        rhs,
        mnk,
        gemm::Parallelism::None,
    );
}

/// [`matmul`] on the rayon pool's threads (the product split by blocks of
/// the output, each element summed by one thread in one order, so results
/// do not depend on the thread count).
pub(crate) fn matmul_parallel(
    dst: &mut [f32],
    dst_rs: usize,
    accumulate: bool,
    lhs: MatRef<'_>,
    rhs: MatRef<'_>,
    mnk: [usize; 3],
) {
    matmul_with(
        dst,
        dst_rs,
        accumulate,
        lhs,
        rhs,
        mnk,
        gemm::Parallelism::Rayon(0),
    );
}

fn matmul_with(
    dst: &mut [f32],
    dst_rs: usize,
    accumulate: bool,
    lhs: MatRef<'_>,
    rhs: MatRef<'_>,
    [m, n, k]: [usize; 3],
    parallelism: gemm::Parallelism,
) {
    assert!(
        m == 0 || n == 0 || (m - 1) * dst_rs + n <= dst.len(),
        "gemm: destination too small"
    );
    assert!(lhs.covers(m, k), "gemm: left operand too small");
    assert!(rhs.covers(k, n), "gemm: right operand too small");
    if m == 0 || n == 0 {
        return;
    }
    if k == 0 {
        if !accumulate {
            for row in 0..m {
                dst[row * dst_rs..row * dst_rs + n].fill(0.0);
            }
        }
        return;
    }
    let stride = |s: usize| isize::try_from(s).expect("gemm: stride overflows isize");
    // SAFETY: the asserts above put every element the product reads
    // (lhs (i, l) for i < m, l < k; rhs (l, j) for l < k, j < n) and writes
    // (dst (i, j) = dst[i * dst_rs + j]) inside the borrowed slices; `dst`
    // is a unique borrow, so it aliases neither operand.
    #[allow(unsafe_code)]
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            dst.as_mut_ptr(),
            1,
            stride(dst_rs),
            accumulate,
            lhs.data.as_ptr(),
            stride(lhs.cs),
            stride(lhs.rs),
            rhs.data.as_ptr(),
            stride(rhs.cs),
            stride(rhs.rs),
            1.0f32,
            1.0f32,
            false,
            false,
            false,
            parallelism,
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn naive(a: &[f32], b: &[f32], m: usize, n: usize, k: usize) -> Vec<f32> {
        let mut c = vec![0.0; m * n];
        for i in 0..m {
            for j in 0..n {
                c[i * n + j] = (0..k).map(|l| a[i * k + l] * b[l * n + j]).sum();
            }
        }
        c
    }

    #[test]
    fn matches_the_naive_product_in_every_orientation() {
        let (m, n, k) = (5, 7, 3);
        let a: Vec<f32> = (0..m * k).map(|v| v as f32 * 0.5 - 3.0).collect();
        let b: Vec<f32> = (0..k * n).map(|v| (v % 5) as f32 - 1.0).collect();
        let expect = naive(&a, &b, m, n, k);
        // The same matrices stored transposed, read through swapped strides.
        let at: Vec<f32> = (0..k * m).map(|v| a[(v % m) * k + v / m]).collect();
        let bt: Vec<f32> = (0..n * k).map(|v| b[(v % k) * n + v / k]).collect();
        for (lhs, rhs) in [
            (MatRef::row_major(&a, k), MatRef::row_major(&b, n)),
            (
                MatRef::row_major(&at, m).transposed(),
                MatRef::row_major(&bt, k).transposed(),
            ),
        ] {
            let mut c = vec![0.0; m * n];
            matmul(&mut c, n, false, lhs, rhs, [m, n, k]);
            assert_eq!(c, expect);
            matmul(&mut c, n, true, lhs, rhs, [m, n, k]);
            let twice: Vec<f32> = expect.iter().map(|v| 2.0 * v).collect();
            assert_eq!(c, twice);
        }
    }

    #[test]
    #[should_panic(expected = "right operand too small")]
    fn refuses_a_short_operand() {
        let a = [1.0; 6];
        let b = [1.0; 5];
        let mut c = [0.0; 4];
        matmul(
            &mut c,
            2,
            false,
            MatRef::row_major(&a, 3),
            MatRef::row_major(&b, 2),
            [2, 2, 3],
        );
    }
}
