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
use burn::nn::{BatchNorm, BatchNormConfig};
use burn::tensor::activation::relu;
use burn::tensor::{Device, Int, Tensor, TensorData};
use rand::Rng;
use rand_chacha::ChaCha8Rng;
use reusebench_core::init::{normal_param, uniform_fan_in};
use reusebench_kernels::{batch_norm_forward, conv2d_with_weight};
use serde::{Deserialize, Serialize};

use crate::group::Rotator;
use crate::steerable::{BasisKind, SteerableBasis};

/// The lifting layer: image → functions on C_N.
#[derive(Module, Debug)]
pub struct LiftingConv {
    /// `[O, C, k, k]` pixels, or with a steerable basis `[O, C, 1, len]`
    /// coefficients.
    pub weight: Param<Tensor<4>>,
    /// `[O]`, shared across the group (so it commutes with rotations).
    pub bias: Param<Tensor<1>>,
    pub order: usize,
    #[module(skip)]
    basis: Option<SteerableBasis>,
}

impl LiftingConv {
    /// Filters of k×k pixels, or with a `basis` sums of a
    /// [`SteerableBasis`]'s functions, drawn as `init` says.
    pub fn new(
        rng: &mut ChaCha8Rng,
        [cin, cout, kernel]: [usize; 3],
        order: usize,
        basis: Option<BasisKind>,
        init: FilterInit,
        device: &Device,
    ) -> Self {
        let basis = basis.map(|kind| SteerableBasis::new(order, kernel, kind));
        let shape = match &basis {
            Some(b) => [cout, cin, 1, b.len],
            None => [cout, cin, kernel, kernel],
        };
        Self {
            weight: init.draw(rng, shape, cin, kernel, device),
            bias: Param::from_tensor(Tensor::zeros([cout], device)),
            order,
            basis,
        }
    }

    /// The stacked bank `[O·N, C, k, k]`: row o·N + g is filter o rotated by g.
    pub fn bank(&self) -> Tensor<4> {
        if let Some(basis) = &self.basis {
            let [o, c, _, len] = self.weight.dims();
            let k = basis.size;
            let coefficients = self.weight.val().reshape([o * c, len]);
            let copies = (0..self.order)
                .map(|g| basis.filters(coefficients.clone(), g).reshape([o, c, k, k]))
                .collect();
            return Tensor::<4>::stack::<5>(copies, 1).reshape([o * self.order, c, k, k]);
        }
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
    /// `[O, C, N, k, k]` pixels, or with a steerable basis `[O, C, N, 1,
    /// len]` coefficients.
    pub weight: Param<Tensor<5>>,
    pub bias: Param<Tensor<1>>,
    pub order: usize,
    #[module(skip)]
    basis: Option<SteerableBasis>,
}

impl GroupConv {
    /// Filters as [`LiftingConv::new`]'s, over C·N input maps.
    pub fn new(
        rng: &mut ChaCha8Rng,
        [cin, cout, kernel]: [usize; 3],
        order: usize,
        basis: Option<BasisKind>,
        init: FilterInit,
        device: &Device,
    ) -> Self {
        let basis = basis.map(|kind| SteerableBasis::new(order, kernel, kind));
        let shape = match &basis {
            Some(b) => [cout, cin, order, 1, b.len],
            None => [cout, cin, order, kernel, kernel],
        };
        Self {
            weight: init.draw(rng, shape, cin * order, kernel, device),
            bias: Param::from_tensor(Tensor::zeros([cout], device)),
            order,
            basis,
        }
    }

    /// The stacked bank `[O·N, C·N, k, k]`: for output element g, entry
    /// (c, h) is `W[o, c, (h − g) mod N]` rotated by g.
    pub fn bank(&self) -> Tensor<4> {
        let w = self.weight.val();
        let device = w.device();
        if let Some(basis) = &self.basis {
            let [o, c, n, _, len] = w.dims();
            let k = basis.size;
            let copies = (0..n)
                .map(|g| {
                    let shift: Vec<i64> = (0..n).map(|h| ((h + n - g) % n) as i64).collect();
                    let shift = Tensor::<1, Int>::from_data(TensorData::new(shift, [n]), &device);
                    let shifted = w.clone().select(2, shift).reshape([o * c * n, len]);
                    basis.filters(shifted, g).reshape([o, c, n, k, k])
                })
                .collect();
            return Tensor::<5>::stack::<6>(copies, 1).reshape([o * n, c * n, k, k]);
        }
        let [o, c, n, k, _] = w.dims();
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

/// Which of equiadapt's canonicalization networks to build.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Network {
    /// `CustomEquivariantNetwork`: the lifting layer (kernel k), then
    /// layers − 1 × (ReLU, 1x1 group convolution).
    #[default]
    Custom,
    /// `ESCNNEquivariantNetwork`: the lifting layer, then layers − 1 group
    /// convolutions with k×k kernels, each after a batch norm per field
    /// (statistics shared by a channel's N group elements, e2cnn's
    /// `InnerBatchNorm`, momentum 0.9) and a ReLU; every filter from a
    /// steerable basis ([`SteerableBasis`], as e2cnn's `R2Conv`), so that
    /// eighth turns of filters are exact; in training a dropout of 0.5
    /// after each ReLU ([`Dropout`]).
    Escnn,
}

impl Network {
    /// How the reference draws this network's filters.
    pub fn reference_init(self) -> FilterInit {
        match self {
            Network::Custom => FilterInit::Uniform,
            Network::Escnn => FilterInit::He,
        }
    }

    /// The reference's dropout after each ReLU (equiadapt's escnn network
    /// has e2cnn's `PointwiseDropout(p = 0.5)`; its custom one none).
    pub fn reference_dropout(self) -> f64 {
        match self {
            Network::Custom => 0.0,
            Network::Escnn => 0.5,
        }
    }
}

/// How filter weights (pixels or basis coefficients) are first drawn.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum FilterInit {
    /// PyTorch's default for a convolution (kaiming uniform, a = √5):
    /// U(±1/√fan_in), the fan-in counted in pixels (C·k²) whatever the
    /// filters are made of. equiadapt's custom network's.
    Uniform,
    /// e2cnn's generalised He initialisation (`R2Conv`'s default): each
    /// weight from N(0, 1/n), n the weights that feed one output channel
    /// (C × the basis functions, or pixels, of a filter), so that the
    /// weights into an output sum to variance 1. On unit-norm basis
    /// functions a layer then keeps the variance of white noise.
    He,
}

impl FilterInit {
    /// Weights of `shape` (its last axis the filter's basis functions, or
    /// its last two the k×k pixels) into filters over `inputs` maps.
    fn draw<const D: usize>(
        self,
        rng: &mut ChaCha8Rng,
        shape: [usize; D],
        inputs: usize,
        kernel: usize,
        device: &Device,
    ) -> Param<Tensor<D>> {
        match self {
            FilterInit::Uniform => uniform_fan_in(rng, shape, inputs * kernel * kernel, device),
            FilterInit::He => {
                let per_filter = shape[D - 1] * shape[D - 2];
                let std = 1.0 / ((inputs * per_filter) as f32).sqrt();
                normal_param(rng, shape, std, device)
            }
        }
    }
}

/// equiadapt's canonicalization network ([`Network`]), averaged over
/// channels and space into one score per group element.
#[derive(Module, Debug)]
pub struct EquivariantNet {
    pub lift: LiftingConv,
    pub layers: Vec<GroupConv>,
    /// Before each of `layers` (escnn), or none (custom).
    pub norms: Vec<BatchNorm>,
    #[module(skip)]
    pub pool: Pool,
}

/// Where the last maps are averaged into scores.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Pool {
    /// The inscribed disc: symmetric under every turn, so an eighth turn
    /// keeps the pooled region in place.
    #[default]
    Disc,
    /// The whole square, as equiadapt's networks (`torch.mean` over
    /// space): an eighth turn moves its corners out of the map.
    Square,
}

/// How a network's filters are made: drawn as `init` says, from `basis`
/// (escnn's steerable filters; the custom network's are pixels).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Filters {
    pub init: FilterInit,
    pub basis: BasisKind,
}

impl EquivariantNet {
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        rng: &mut ChaCha8Rng,
        network: Network,
        Filters { init, basis }: Filters,
        channels_in: usize,
        channels: usize,
        kernel: usize,
        layers: usize,
        order: usize,
        device: &Device,
    ) -> Self {
        let steerable = network == Network::Escnn;
        let basis = steerable.then_some(basis);
        let lift = LiftingConv::new(
            rng,
            [channels_in, channels, kernel],
            order,
            basis,
            init,
            device,
        );
        // The custom network's group layers are 1x1; escnn's k×k.
        let group_kernel = if steerable { kernel } else { 1 };
        let layers: Vec<GroupConv> = (1..layers)
            .map(|_| {
                let shape = [channels, channels, group_kernel];
                GroupConv::new(rng, shape, order, basis, init, device)
            })
            .collect();
        let norms = match network {
            Network::Custom => Vec::new(),
            Network::Escnn => layers
                .iter()
                .map(|_| {
                    BatchNormConfig::new(channels)
                        .with_momentum(0.9)
                        .init(device)
                })
                .collect(),
        };
        Self {
            lift,
            layers,
            norms,
            pool: Pool::Disc,
        }
    }

    /// The same network pooling its last maps over `pool`.
    pub fn with_pool(self, pool: Pool) -> Self {
        Self { pool, ..self }
    }

    /// Scores `[B, N]` of a batch `[B, C, H, W]`.
    pub fn forward(&self, x: Tensor<4>) -> Tensor<2> {
        self.forward_with(x, None)
    }

    /// [`EquivariantNet::forward`], with `dropout` after each ReLU in
    /// training.
    pub fn forward_with(&self, x: Tensor<4>, mut dropout: Option<&mut Dropout>) -> Tensor<2> {
        let mut f = self.lift.forward(x);
        for (i, layer) in self.layers.iter().enumerate() {
            if let Some(bn) = self.norms.get(i) {
                f = inner_batch_norm(bn, f);
            }
            let mut g = relu(f);
            if let Some(d) = dropout.as_deref_mut() {
                g = d.apply(g);
            }
            f = layer.forward(g);
        }
        let [b, o, n, h, w] = f.dims();
        let (f, count) = match self.pool {
            Pool::Disc => {
                let (mask, count) = disc(h, &f.device());
                (f * mask.reshape([1, 1, 1, h, w]), count)
            }
            Pool::Square => (f, h * w),
        };
        f.sum_dims(&[1, 3, 4])
            .reshape([b, n])
            .div_scalar((o * count) as f64)
    }
}

/// e2cnn's `PointwiseDropout` for training: each activation kept with
/// probability 1 − p and scaled by 1/(1 − p). The masks come from the
/// cell's own stream, which checkpoints save, so that a resumed cell draws
/// the masks an uninterrupted one would (burn's dropout draws from the
/// backend's generator, which they do not).
pub struct Dropout<'a> {
    pub p: f64,
    pub rng: &'a mut ChaCha8Rng,
}

impl Dropout<'_> {
    fn apply(&mut self, x: Tensor<5>) -> Tensor<5> {
        if self.p <= 0.0 {
            return x;
        }
        let dims = x.dims();
        let keep = (1.0 / (1.0 - self.p)) as f32;
        let p = self.p as f32;
        let mask: Vec<f32> = (0..dims.iter().product::<usize>())
            .map(|_| {
                if self.rng.random::<f32>() < p {
                    0.0
                } else {
                    keep
                }
            })
            .collect();
        let mask = Tensor::<5>::from_data(TensorData::new(mask, dims), &x.device());
        x * mask
    }
}

/// A batch norm over `[B, O, N, H, W]` with one set of statistics per
/// channel o, shared by its N group elements (so that it commutes with
/// rotations, which permute them).
fn inner_batch_norm(bn: &BatchNorm, f: Tensor<5>) -> Tensor<5> {
    let [b, o, n, h, w] = f.dims();
    batch_norm_forward(bn, f.reshape([b, o, n * h, w])).reshape([b, o, n, h, w])
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

    /// A network with its reference's filters (`[channels in, channels,
    /// kernel, layers, order]`), drawn from `seed`.
    fn reference_net(
        seed: u64,
        network: Network,
        [cin, channels, kernel, layers, order]: [usize; 5],
        device: &Device,
    ) -> EquivariantNet {
        let filters = Filters {
            init: network.reference_init(),
            basis: BasisKind::E2cnn,
        };
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        EquivariantNet::new(
            &mut rng, network, filters, cin, channels, kernel, layers, order, device,
        )
    }

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
        let net = reference_net(1, Network::Custom, [3, 6, 5, 3, 4], &device);
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

    /// Pooling over the whole square (equiadapt's) keeps the scores exactly
    /// C4-equivariant too (a quarter turn maps the square onto itself), and
    /// gives other scores than the disc.
    #[test]
    fn square_pooling_keeps_c4_exact_and_differs_from_the_disc() {
        let device = DeviceSpec::for_tests();
        let disc = reference_net(1, Network::Escnn, [3, 4, 5, 2, 4], &device);
        let square = disc.clone().with_pool(Pool::Square);
        let x = image(2, 13, &device);
        let base = values(square.forward(x.clone()));
        assert_ne!(base, values(disc.forward(x.clone())));
        for r in 1..4 {
            let got = values(square.forward(rot90(x.clone(), r)));
            for (a, b) in got.iter().zip(&shifted(&base, 4, r)) {
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
        let net = reference_net(3, Network::Custom, [3, 4, 5, 2, 8], &device);
        let x = image(4, 11, &device);
        let base = values(net.forward(x.clone()));
        let got = values(net.forward(rot90(x, 1)));
        let want = shifted(&base, 8, 2);
        for (a, b) in got.iter().zip(&want) {
            assert!((a - b).abs() <= 1e-5 * b.abs().max(1.0), "{a} vs {b}");
        }
    }

    /// equiadapt's escnn structure: k×k group layers after a per-field batch
    /// norm and a ReLU. Its scores still permute exactly under quarter
    /// turns, with batch statistics (training) and with running ones.
    #[test]
    fn escnn_network_is_exactly_c4_equivariant_with_batch_norm() {
        let device = DeviceSpec::for_tests();
        let net = reference_net(5, Network::Escnn, [3, 4, 3, 3, 4], &device);
        assert_eq!(net.layers.len(), 2);
        assert_eq!(net.norms.len(), 2);
        assert_eq!(net.layers[0].weight.dims(), [4, 4, 4, 1, 6]);
        let x = image(6, 13, &device);
        let check = |net: &EquivariantNet, x: Tensor<4>, what: &str| {
            let base = values(net.forward(x.clone()));
            for r in 1..4 {
                let got = values(net.forward(rot90(x.clone(), r)));
                for (a, b) in got.iter().zip(&shifted(&base, 4, r)) {
                    assert!(
                        (a - b).abs() <= 1e-5 * b.abs().max(1.0),
                        "{what} r={r}: {a} vs {b}"
                    );
                }
            }
        };
        // Running statistics (evaluation), moved off their initial values
        // by training passes so that the norm is not the identity.
        let train_device = device.clone().autodiff();
        let trained = net.clone().fork(&train_device);
        for seed in 0..3 {
            let _ = trained.forward(image(10 + seed, 13, &train_device));
        }
        let trained = trained.fork(&device);
        let mean = values(trained.norms[0].running_mean.value().reshape([1, 4]));
        assert!(
            mean.iter().any(|m| m.abs() > 1e-4),
            "running mean unchanged: {mean:?}"
        );
        check(&trained, x.clone(), "running statistics");
        // Batch statistics: the turned batch has the same per-channel ones.
        let x = image(6, 13, &train_device);
        let base = values(net.clone().fork(&train_device).forward(x.clone()));
        let got = values(net.fork(&train_device).forward(rot90(x, 1)));
        for (a, b) in got.iter().zip(&shifted(&base, 4, 1)) {
            assert!(
                (a - b).abs() <= 1e-4 * b.abs().max(1.0),
                "batch statistics: {a} vs {b}"
            );
        }
    }

    /// e2cnn's generalised He keeps the variance of white noise through
    /// the steerable lifting and group layers (1 in expectation); PyTorch's
    /// uniform, its fan-in counted in pixels, gives len / 3k² of it (11
    /// basis functions at k = 5: 0.15), the init our escnn network had
    /// before it followed e2cnn.
    #[test]
    fn he_init_keeps_the_variance_of_white_noise_through_steerable_layers() {
        use rand::Rng;
        let device = DeviceSpec::for_tests();
        let noise = |seed: u64, shape: Vec<usize>| {
            let mut rng = ChaCha8Rng::seed_from_u64(seed);
            let n = shape.iter().product();
            // Uniform on ±√3: unit variance.
            let v: Vec<f32> = (0..n)
                .map(|_| (rng.random::<f32>() * 2.0 - 1.0) * 3f32.sqrt())
                .collect();
            TensorData::new(v, shape)
        };
        let variance = |v: Vec<f32>| v.iter().map(|x| x * x).sum::<f32>() / v.len() as f32;
        for (init, expected) in [(FilterInit::He, 1.0), (FilterInit::Uniform, 11.0 / 75.0)] {
            let mut rng = ChaCha8Rng::seed_from_u64(21);
            // Enough weights (2 160 and 7 680) that their drawn variance is
            // within a few per cent of the intended one.
            let lift = LiftingConv::new(
                &mut rng,
                [3, 48, 5],
                8,
                Some(BasisKind::E2cnn),
                init,
                &device,
            );
            let group = GroupConv::new(
                &mut rng,
                [4, 16, 5],
                8,
                Some(BasisKind::E2cnn),
                init,
                &device,
            );
            let x = Tensor::<4>::from_data(noise(22, vec![4, 3, 24, 24]), &device);
            let lifted = variance(values(lift.forward(x)));
            let x = Tensor::<5>::from_data(noise(23, vec![4, 4, 8, 16, 16]), &device);
            let grouped = variance(values(group.forward(x)));
            for (layer, got) in [("lifting", lifted), ("group", grouped)] {
                assert!(
                    (got / expected - 1.0).abs() < 0.2,
                    "{init:?} {layer}: variance {got}, expected about {expected}"
                );
            }
        }
    }

    /// Dropout zeroes about p of the activations and scales the rest by
    /// 1/(1 − p); at p = 0 it returns its input unchanged and draws nothing.
    #[test]
    fn dropout_keeps_one_minus_p_of_the_activations_scaled() {
        use rand::Rng;
        let device = DeviceSpec::for_tests();
        let ones = Tensor::<5>::ones([2, 4, 8, 10, 10], &device);
        let mut rng = ChaCha8Rng::seed_from_u64(3);
        let kept = values(
            Dropout {
                p: 0.5,
                rng: &mut rng,
            }
            .apply(ones.clone()),
        );
        let zeros = kept.iter().filter(|&&v| v == 0.0).count() as f64 / kept.len() as f64;
        assert!((zeros - 0.5).abs() < 0.02, "{zeros}");
        assert!(kept.iter().all(|&v| v == 0.0 || v == 2.0));
        let mut untouched = ChaCha8Rng::seed_from_u64(3);
        let same = values(
            Dropout {
                p: 0.0,
                rng: &mut untouched,
            }
            .apply(ones.clone()),
        );
        assert_eq!(same, values(ones));
        assert_eq!(
            untouched.random::<u64>(),
            ChaCha8Rng::seed_from_u64(3).random::<u64>(),
            "p = 0 draws nothing"
        );
    }

    /// Training reaches the escnn network's steerable coefficients in both
    /// layers and the batch norm's γ and β. (The last layer's bias moves
    /// every score alike: its gradient is the sum of the scores' own.)
    #[test]
    fn escnn_gradients_reach_coefficients_and_batch_norm() {
        let device = DeviceSpec::for_tests().autodiff();
        let net = reference_net(11, Network::Escnn, [3, 4, 5, 2, 8], &device);
        let scores = net.forward(image(12, 17, &device));
        let target = Tensor::<2>::from_data(
            TensorData::new(
                (0..16).map(|v| v as f32 - 7.5).collect::<Vec<f32>>(),
                [2, 8],
            ),
            &device,
        );
        let grads = (scores * target).sum().backward();
        let norm = |t: Tensor<1>| values(t.abs().sum().reshape([1, 1]))[0];
        let flat = |g: Option<Tensor<4>>| g.map(|g| g.reshape([-1])).unwrap();
        assert!(
            norm(flat(net.lift.weight.grad(&grads))) > 0.0,
            "lifting coefficients"
        );
        let group = net.layers[0].weight.grad(&grads).unwrap().reshape([-1]);
        assert!(norm(group) > 0.0, "group coefficients");
        assert!(norm(net.norms[0].gamma.grad(&grads).unwrap()) > 0.0, "γ");
        assert!(norm(net.norms[0].beta.grad(&grads).unwrap()) > 0.0, "β");
    }
}
