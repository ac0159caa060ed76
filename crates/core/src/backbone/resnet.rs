//! ResNet-18, CIFAR variant: 3x3 stride-1 stem, no max-pool, four stages of
//! two basic blocks with widths w, 2w, 4w, 8w, global average pooling.

use burn::module::Module;
use burn::nn::conv::{Conv2d, Conv2dConfig};
use burn::nn::{BatchNorm, BatchNormConfig, Initializer, PaddingConfig2d};
use burn::tensor::activation::relu;
use burn::tensor::module::adaptive_avg_pool2d;
use burn::tensor::{Device, Tensor};
use rand_chacha::ChaCha8Rng;

use crate::init::kaiming_conv;

fn conv(
    rng: &mut ChaCha8Rng,
    cin: usize,
    cout: usize,
    kernel: usize,
    stride: usize,
    device: &Device,
) -> Conv2d {
    let pad = kernel / 2;
    let mut c = Conv2dConfig::new([cin, cout], [kernel, kernel])
        .with_stride([stride, stride])
        .with_padding(PaddingConfig2d::Explicit(pad, pad, pad, pad))
        .with_bias(false)
        .with_initializer(Initializer::Zeros)
        .init(device);
    c.weight = kaiming_conv(rng, [cout, cin, kernel, kernel], device);
    c
}

fn bn(channels: usize, device: &Device) -> BatchNorm {
    // PyTorch's defaults: momentum 0.1, eps 1e-5.
    BatchNormConfig::new(channels).init(device)
}

/// Projection shortcut when the shape changes.
#[derive(Module, Debug)]
pub struct Downsample {
    pub conv: Conv2d,
    pub bn: BatchNorm,
}

#[derive(Module, Debug)]
pub struct BasicBlock {
    pub conv1: Conv2d,
    pub bn1: BatchNorm,
    pub conv2: Conv2d,
    pub bn2: BatchNorm,
    pub downsample: Option<Downsample>,
}

impl BasicBlock {
    fn new(rng: &mut ChaCha8Rng, cin: usize, cout: usize, stride: usize, device: &Device) -> Self {
        let downsample = (stride != 1 || cin != cout).then(|| Downsample {
            conv: conv(rng, cin, cout, 1, stride, device),
            bn: bn(cout, device),
        });
        Self {
            conv1: conv(rng, cin, cout, 3, stride, device),
            bn1: bn(cout, device),
            conv2: conv(rng, cout, cout, 3, 1, device),
            bn2: bn(cout, device),
            downsample,
        }
    }

    pub fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        let identity = match &self.downsample {
            Some(d) => d.bn.forward(d.conv.forward(x.clone())),
            None => x.clone(),
        };
        let out = relu(self.bn1.forward(self.conv1.forward(x)));
        let out = self.bn2.forward(self.conv2.forward(out));
        relu(out + identity)
    }
}

#[derive(Module, Debug)]
pub struct ResNet {
    pub conv1: Conv2d,
    pub bn1: BatchNorm,
    pub layer1: Vec<BasicBlock>,
    pub layer2: Vec<BasicBlock>,
    pub layer3: Vec<BasicBlock>,
    pub layer4: Vec<BasicBlock>,
}

impl ResNet {
    /// ResNet-18 (CIFAR variant) with base width `width`.
    pub fn resnet18_cifar(width: usize, rng: &mut ChaCha8Rng, device: &Device) -> Self {
        let w = width;
        let mut stage = |cin: usize, cout: usize, stride: usize| {
            vec![
                BasicBlock::new(rng, cin, cout, stride, device),
                BasicBlock::new(rng, cout, cout, 1, device),
            ]
        };
        let layer1 = stage(w, w, 1);
        let layer2 = stage(w, 2 * w, 2);
        let layer3 = stage(2 * w, 4 * w, 2);
        let layer4 = stage(4 * w, 8 * w, 2);
        Self {
            conv1: conv(rng, 3, w, 3, 1, device),
            bn1: bn(w, device),
            layer1,
            layer2,
            layer3,
            layer4,
        }
    }

    /// Pooled features, `[batch, 8 * width]`.
    pub fn forward(&self, x: Tensor<4>) -> Tensor<2> {
        let mut x = relu(self.bn1.forward(self.conv1.forward(x)));
        for block in self
            .layer1
            .iter()
            .chain(&self.layer2)
            .chain(&self.layer3)
            .chain(&self.layer4)
        {
            x = block.forward(x);
        }
        let [n, c, _, _] = x.dims();
        adaptive_avg_pool2d(x, [1, 1]).reshape([n, c])
    }
}
