//! The sizes of one convolution and the blocked transpose that the direct
//! and the Winograd paths share.

/// Sizes of one convolution.
#[derive(Clone, Copy, Debug)]
pub(crate) struct ConvDims {
    pub n: usize,
    pub c: usize,
    pub h: usize,
    pub w: usize,
    pub o: usize,
    pub kh: usize,
    pub kw: usize,
    pub sh: usize,
    pub sw: usize,
    pub ph: usize,
    pub pw: usize,
    pub ho: usize,
    pub wo: usize,
}

impl ConvDims {
    pub(crate) fn new(
        x: [usize; 4],
        weight: [usize; 4],
        stride: [usize; 2],
        padding: [usize; 2],
    ) -> Self {
        let [n, c, h, w] = x;
        let [o, cw, kh, kw] = weight;
        assert_eq!(c, cw, "conv2d: input has {c} channels, weight expects {cw}");
        assert!(stride[0] > 0 && stride[1] > 0, "conv2d: zero stride");
        assert!(
            h + 2 * padding[0] >= kh && w + 2 * padding[1] >= kw,
            "conv2d: kernel {kh}x{kw} larger than padded input {h}x{w}"
        );
        let ho = (h + 2 * padding[0] - kh) / stride[0] + 1;
        let wo = (w + 2 * padding[1] - kw) / stride[1] + 1;
        Self {
            n,
            c,
            h,
            w,
            o,
            kh,
            kw,
            sh: stride[0],
            sw: stride[1],
            ph: padding[0],
            pw: padding[1],
            ho,
            wo,
        }
    }

    pub(crate) fn rows(&self) -> usize {
        self.c * self.kh * self.kw
    }

    /// Output columns `ow` whose input column `ow·sw + j − pw` lies inside
    /// the image, for kernel column `j`.
    pub(crate) fn valid_ow(&self, j: usize) -> (usize, usize) {
        let lo = if self.pw > j {
            (self.pw - j).div_ceil(self.sw)
        } else {
            0
        };
        let hi = if self.w + self.pw > j {
            (self.w + self.pw - j).div_ceil(self.sw).min(self.wo)
        } else {
            0
        };
        (lo.min(hi), hi)
    }

    /// The input row for output row `oh` and kernel row `i`, if inside.
    pub(crate) fn input_row(&self, oh: usize, i: usize) -> Option<usize> {
        (oh * self.sh + i)
            .checked_sub(self.ph)
            .filter(|&r| r < self.h)
    }
}

/// `dst[c, r] = src[r, c]` for a row-major `rows x cols` `src`: 8x8 blocks
/// held in registers (the compiler turns them into shuffles), the ragged
/// edges value by value.
pub(crate) fn transpose(src: &[f32], rows: usize, cols: usize, dst: &mut [f32]) {
    const B: usize = 8;
    let (rows_b, cols_b) = (rows / B * B, cols / B * B);
    for r0 in (0..rows_b).step_by(B) {
        for c0 in (0..cols_b).step_by(B) {
            let block: [[f32; B]; B] = std::array::from_fn(|i| {
                let row = &src[(r0 + i) * cols + c0..][..B];
                std::array::from_fn(|j| row[j])
            });
            for j in 0..B {
                let out = &mut dst[(c0 + j) * rows + r0..][..B];
                for i in 0..B {
                    out[i] = block[i][j];
                }
            }
        }
        for r in r0..r0 + B {
            for c in cols_b..cols {
                dst[c * rows + r] = src[r * cols + c];
            }
        }
    }
    for r in rows_b..rows {
        for c in 0..cols {
            dst[c * rows + r] = src[r * cols + c];
        }
    }
}

#[cfg(test)]
mod tests {
    use super::transpose;

    #[test]
    fn transpose_matches_the_definition_with_and_without_ragged_edges() {
        for (rows, cols) in [(16, 8), (13, 19), (8, 3), (5, 24), (1, 1)] {
            let src: Vec<f32> = (0..rows * cols).map(|v| v as f32).collect();
            let mut dst = vec![f32::NAN; rows * cols];
            transpose(&src, rows, cols, &mut dst);
            for r in 0..rows {
                for c in 0..cols {
                    assert_eq!(
                        dst[c * rows + r],
                        src[r * cols + c],
                        "{rows}x{cols} at ({r}, {c})"
                    );
                }
            }
        }
    }
}
