//! Group-equivariant convolutions for C_N on the regular representation,
//! as ordinary convolutions with rotated, stacked filters.
//!
//! A lifting layer correlates the image with N rotated copies of each
//! filter: output `[B, O, N, H, W]`. A group layer mixes a `[B, C, N, H,
//! W]` input with filters that are, for output element g, each filter
//! rotated by g and cyclically shifted by g along the group axis. Rotating
//! the input by r then rotates every feature map by r and shifts the group
//! axis by r; averaging over channels and space leaves one score per group
//! element that the rotation permutes. The filter bank is built once per
//! forward pass (one per batch), then one convolution serves every image.

use burn::module::{Module, Param};
use burn::tensor::activation::relu;
use burn::tensor::{Device, Int, Tensor, TensorData};
use rand_chacha::ChaCha8Rng;
use reusebench_core::init::uniform_fan_in;
use reusebench_kernels::conv2d_with_weight;

use crate::group::Rotator;

/// The lifting layer: image → functions on C_N.
#[derive(Module, Debug)]
pub struct LiftingConv {
    /// `[O, C, k, k]`.
    pub weight: Param<Tensor<4>>,
    /// `[O]`, shared across the group (so it commutes with rotations).
    pub bias: Param<Tensor<1>>,
    pub order: usize,
}

impl LiftingConv {
    pub fn new(
        rng: &mut ChaCha8Rng,
        cin: usize,
        cout: usize,
        kernel: usize,
        order: usize,
        device: &Device,
    ) -> Self {
        Self {
            // PyTorch's default (kaiming uniform, a = √5): U(±1/√fan_in).
            weight: uniform_fan_in(
                rng,
                [cout, cin, kernel, kernel],
                cin * kernel * kernel,
                device,
            ),
            bias: Param::from_tensor(Tensor::zeros([cout], device)),
            order,
        }
    }

    /// The stacked bank `[O·N, C, k, k]`: row o·N + g is filter o rotated by g.
    pub fn bank(&self) -> Tensor<4> {
        let w = self.weight.val();
        let [o, c, k, _] = w.dims();
        let w = w * disc(k, &self.weight.device()).0.reshape([1, 1, k, k]);
        let rot = Rotator::for_filters(self.order, k);
        let copies = (0..self.order).map(|g| rot.rotate(w.clone(), g)).collect();
        Tensor::<4>::stack::<5>(copies, 1).reshape([o * self.order, c, k, k])
    }

    /// `[B, C, H, W]` → `[B, O, N, H−k+1, W−k+1]` (valid correlation).
    pub fn forward(&self, x: Tensor<4>) -> Tensor<5> {
        let y = conv2d_with_weight(x, self.bank(), [1, 1], [0, 0]);
        let [b, _, h, w] = y.dims();
        let o = self.bias.dims()[0];
        y.reshape([b, o, self.order, h, w]) + self.bias.val().reshape([1, o, 1, 1, 1])
    }
}

/// A group convolution on the regular representation of C_N.
#[derive(Module, Debug)]
pub struct GroupConv {
    /// `[O, C, N, k, k]`.
    pub weight: Param<Tensor<5>>,
    pub bias: Param<Tensor<1>>,
    pub order: usize,
}

impl GroupConv {
    pub fn new(
        rng: &mut ChaCha8Rng,
        cin: usize,
        cout: usize,
        kernel: usize,
        order: usize,
        device: &Device,
    ) -> Self {
        let fan_in = cin * order * kernel * kernel;
        Self {
            weight: uniform_fan_in(rng, [cout, cin, order, kernel, kernel], fan_in, device),
            bias: Param::from_tensor(Tensor::zeros([cout], device)),
            order,
        }
    }

    /// The stacked bank `[O·N, C·N, k, k]`: for output element g, entry
    /// (c, h) is `W[o, c, (h − g) mod N]` rotated by g.
    pub fn bank(&self) -> Tensor<4> {
        let w = self.weight.val();
        let [o, c, n, k, _] = w.dims();
        let device = w.device();
        let w = w * disc(k, &device).0.reshape([1, 1, 1, k, k]);
        let rot = Rotator::for_filters(self.order, k);
        let copies = (0..n)
            .map(|g| {
                let shift: Vec<i64> = (0..n).map(|h| ((h + n - g) % n) as i64).collect();
                let shift = Tensor::<1, Int>::from_data(TensorData::new(shift, [n]), &device);
                let shifted = w.clone().select(2, shift);
                // A 1x1 filter is its own rotation.
                if k == 1 {
                    shifted
                } else {
                    rot.rotate(shifted, g)
                }
            })
            .collect();
        Tensor::<5>::stack::<6>(copies, 1).reshape([o * n, c * n, k, k])
    }

    /// `[B, C, N, H, W]` → `[B, O, N, H−k+1, W−k+1]`.
    pub fn forward(&self, x: Tensor<5>) -> Tensor<5> {
        let [b, c, n, h, w] = x.dims();
        let y = conv2d_with_weight(x.reshape([b, c * n, h, w]), self.bank(), [1, 1], [0, 0]);
        let [_, _, h, w] = y.dims();
        let o = self.bias.dims()[0];
        y.reshape([b, o, n, h, w]) + self.bias.val().reshape([1, o, 1, 1, 1])
    }
}

/// equiadapt's custom equivariant network: a lifting layer, then
/// (layers − 1) × (ReLU, 1x1 group convolution), averaged over channels
/// and space into one score per group element.
#[derive(Module, Debug)]
pub struct EquivariantNet {
    pub lift: LiftingConv,
    pub layers: Vec<GroupConv>,
}

impl EquivariantNet {
    pub fn new(
        rng: &mut ChaCha8Rng,
        channels_in: usize,
        channels: usize,
        kernel: usize,
        layers: usize,
        order: usize,
        device: &Device,
    ) -> Self {
        let lift = LiftingConv::new(rng, channels_in, channels, kernel, order, device);
        let layers = (1..layers)
            .map(|_| GroupConv::new(rng, channels, channels, 1, order, device))
            .collect();
        Self { lift, layers }
    }

    /// Scores `[B, N]` of a batch `[B, C, H, W]`.
    pub fn forward(&self, x: Tensor<4>) -> Tensor<2> {
        let mut f = self.lift.forward(x);
        for layer in &self.layers {
            f = layer.forward(relu(f));
        }
        let [b, o, n, h, w] = f.dims();
        let (mask, count) = disc(h, &f.device());
        (f * mask.reshape([1, 1, 1, h, w]))
            .sum_dims(&[1, 3, 4])
            .reshape([b, n])
            .div_scalar((o * count) as f64)
    }
}

/// The inscribed disc of an `s`² grid as a 0/1 mask, and its pixel count.
/// Filters are masked to it, and feature maps pooled over it, so that an
/// eighth turn keeps filter mass and the pooled region in place (a
/// square's corners would turn out of the grid); the disc is symmetric
/// under quarter turns, so C4 stays exact.
fn disc(s: usize, device: &Device) -> (Tensor<2>, usize) {
    let c = (s as f64 - 1.0) / 2.0;
    let r2 = (s as f64 / 2.0).powi(2);
    let v: Vec<f32> = (0..s * s)
        .map(|i| {
            let (y, x) = ((i / s) as f64 - c, (i % s) as f64 - c);
            if y * y + x * x <= r2 { 1.0 } else { 0.0 }
        })
        .collect();
    let count = v.iter().filter(|&&m| m > 0.0).count();
    (Tensor::from_data(TensorData::new(v, [s, s]), device), count)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::group::rot90;
    use crate::test_util::values;
    use rand::SeedableRng;
    use reusebench_core::device::DeviceSpec;

    fn image(seed: u64, size: usize, device: &Device) -> Tensor<4> {
        use rand::Rng;
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let v: Vec<f32> = (0..2 * 3 * size * size)
            .map(|_| rng.random::<f32>() - 0.5)
            .collect();
        Tensor::from_data(TensorData::new(v, [2, 3, size, size]), device)
    }

    /// Scores of a rotated input are the scores, shifted cyclically.
    fn shifted(scores: &[f32], n: usize, r: usize) -> Vec<f32> {
        scores
            .chunks(n)
            .flat_map(|row| (0..n).map(move |g| row[(g + n - r) % n]))
            .collect()
    }

    #[test]
    fn c4_scores_permute_exactly_under_quarter_turns() {
        let device = DeviceSpec::for_tests();
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        let net = EquivariantNet::new(&mut rng, 3, 6, 5, 3, 4, &device);
        let x = image(2, 13, &device);
        let base = values(net.forward(x.clone()));
        for r in 1..4 {
            let got = values(net.forward(rot90(x.clone(), r)));
            let want = shifted(&base, 4, r);
            for (a, b) in got.iter().zip(&want) {
                assert!(
                    (a - b).abs() <= 1e-5 * b.abs().max(1.0),
                    "r={r}: {a} vs {b}"
                );
            }
        }
    }

    #[test]
    fn c8_scores_permute_by_two_under_a_quarter_turn() {
        // The quarter turn is in C8's exact C4 subgroup.
        let device = DeviceSpec::for_tests();
        let mut rng = ChaCha8Rng::seed_from_u64(3);
        let net = EquivariantNet::new(&mut rng, 3, 4, 5, 2, 8, &device);
        let x = image(4, 11, &device);
        let base = values(net.forward(x.clone()));
        let got = values(net.forward(rot90(x, 1)));
        let want = shifted(&base, 8, 2);
        for (a, b) in got.iter().zip(&want) {
            assert!((a - b).abs() <= 1e-5 * b.abs().max(1.0), "{a} vs {b}");
        }
    }
}
