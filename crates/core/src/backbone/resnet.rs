//! ResNets with torchvision's structure and parameter names, so that
//! torchvision checkpoints map onto them one to one (see `checkpoint::torchvision`).
//!
//! - `resnet18-cifar`: 3x3 stride-1 stem, no max-pool (the continual-learning
//!   papers' CIFAR variant), basic blocks [2, 2, 2, 2].
//! - `resnet18`, `resnet50`: torchvision's ImageNet models: 7x7 stride-2 stem
//!   and 3x3 stride-2 max-pool (optional, for small images); basic blocks
//!   [2, 2, 2, 2] or bottleneck blocks [3, 4, 6, 3] (stride on the 3x3, as
//!   torchvision's "v1.5").
//!
//! Stage widths are w, 2w, 4w, 8w (times 4 at the output of a bottleneck).

use burn::module::Module;
use burn::nn::conv::{Conv2d, Conv2dConfig};
use burn::nn::pool::{MaxPool2d, MaxPool2dConfig};
use burn::nn::{BatchNorm, BatchNormConfig, Initializer, PaddingConfig2d};
use burn::tensor::module::adaptive_avg_pool2d;
use burn::tensor::{Device, Tensor};
use rand_chacha::ChaCha8Rng;

use crate::init::kaiming_conv;
use reusebench_kernels::{Epilogue, conv_bn_forward};

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

/// Projection shortcut when the shape changes (torchvision: `downsample.0`, `downsample.1`).
#[derive(Module, Debug)]
pub struct Downsample {
    pub conv: Conv2d,
    pub bn: BatchNorm,
}

/// A residual block: basic (two 3x3 convolutions) when `conv3` is absent,
/// bottleneck (1x1, 3x3, 1x1) when present. One type keeps parameter paths
/// free of enum variant names, exactly as torchvision names them.
#[derive(Module, Debug)]
pub struct Block {
    pub conv1: Conv2d,
    pub bn1: BatchNorm,
    pub conv2: Conv2d,
    pub bn2: BatchNorm,
    pub conv3: Option<Conv2d>,
    pub bn3: Option<BatchNorm>,
    pub downsample: Option<Downsample>,
}

/// Which residual block a ResNet stacks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BlockKind {
    Basic,
    Bottleneck,
}

impl BlockKind {
    /// Output channels per unit of the stage width.
    pub fn expansion(self) -> usize {
        match self {
            BlockKind::Basic => 1,
            BlockKind::Bottleneck => 4,
        }
    }
}

impl Block {
    fn new(
        kind: BlockKind,
        rng: &mut ChaCha8Rng,
        cin: usize,
        planes: usize,
        stride: usize,
        device: &Device,
    ) -> Self {
        let cout = planes * kind.expansion();
        let downsample = (stride != 1 || cin != cout).then(|| Downsample {
            conv: conv(rng, cin, cout, 1, stride, device),
            bn: bn(cout, device),
        });
        match kind {
            BlockKind::Basic => Self {
                conv1: conv(rng, cin, planes, 3, stride, device),
                bn1: bn(planes, device),
                conv2: conv(rng, planes, planes, 3, 1, device),
                bn2: bn(planes, device),
                conv3: None,
                bn3: None,
                downsample,
            },
            BlockKind::Bottleneck => Self {
                conv1: conv(rng, cin, planes, 1, 1, device),
                bn1: bn(planes, device),
                conv2: conv(rng, planes, planes, 3, stride, device),
                bn2: bn(planes, device),
                conv3: Some(conv(rng, planes, cout, 1, 1, device)),
                bn3: Some(bn(cout, device)),
                downsample,
            },
        }
    }

    /// The raw output of the block's last convolution (`conv2`, or
    /// `conv3` in a bottleneck): before its batch norm, the residual sum
    /// and the ReLU, so it takes negative values too.
    pub fn last_conv_output(&self, x: Tensor<4>) -> Tensor<4> {
        let out = conv_bn_forward(&self.conv1, &self.bn1, x, Epilogue::Relu);
        match &self.conv3 {
            Some(conv3) => {
                let out = conv_bn_forward(&self.conv2, &self.bn2, out, Epilogue::Relu);
                conv3.forward(out)
            }
            None => self.conv2.forward(out),
        }
    }

    pub fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        let identity = match &self.downsample {
            Some(d) => conv_bn_forward(&d.conv, &d.bn, x.clone(), Epilogue::None),
            None => x.clone(),
        };
        match (&self.conv3, &self.bn3) {
            (Some(conv3), Some(bn3)) => {
                let out = conv_bn_forward(&self.conv1, &self.bn1, x, Epilogue::Relu);
                let out = conv_bn_forward(&self.conv2, &self.bn2, out, Epilogue::Relu);
                conv_bn_forward(conv3, bn3, out, Epilogue::AddRelu(identity))
            }
            _ => {
                let out = conv_bn_forward(&self.conv1, &self.bn1, x, Epilogue::Relu);
                conv_bn_forward(&self.conv2, &self.bn2, out, Epilogue::AddRelu(identity))
            }
        }
    }
}

#[derive(Module, Debug)]
pub struct ResNet {
    pub conv1: Conv2d,
    pub bn1: BatchNorm,
    /// The ImageNet stem's max-pool; absent in the CIFAR variant or when
    /// switched off for small images. Has no parameters.
    pub maxpool: Option<MaxPool2d>,
    pub layer1: Vec<Block>,
    pub layer2: Vec<Block>,
    pub layer3: Vec<Block>,
    pub layer4: Vec<Block>,
}

/// The shape of a ResNet: stem, block type and blocks per stage.
#[derive(Debug, Clone, Copy)]
pub struct ResNetSpec {
    pub imagenet_stem: bool,
    pub maxpool: bool,
    pub block: BlockKind,
    pub layers: [usize; 4],
    pub width: usize,
}

impl ResNet {
    /// Every batch-norm layer, stem first, in forward order.
    pub fn batch_norms_mut(&mut self) -> Vec<&mut BatchNorm> {
        let mut out = vec![&mut self.bn1];
        for block in self
            .layer1
            .iter_mut()
            .chain(&mut self.layer2)
            .chain(&mut self.layer3)
            .chain(&mut self.layer4)
        {
            out.push(&mut block.bn1);
            out.push(&mut block.bn2);
            if let Some(bn) = &mut block.bn3 {
                out.push(bn);
            }
            if let Some(d) = &mut block.downsample {
                out.push(&mut d.bn);
            }
        }
        out
    }

    pub fn new(spec: ResNetSpec, rng: &mut ChaCha8Rng, device: &Device) -> Self {
        let w = spec.width;
        let mut cin = w;
        let mut stage = |i: usize| {
            let planes = w << i;
            (0..spec.layers[i])
                .map(|j| {
                    let stride = if i > 0 && j == 0 { 2 } else { 1 };
                    let block = Block::new(spec.block, rng, cin, planes, stride, device);
                    cin = planes * spec.block.expansion();
                    block
                })
                .collect::<Vec<_>>()
        };
        let (layer1, layer2, layer3, layer4) = (stage(0), stage(1), stage(2), stage(3));
        // The stem is drawn after the stages: the order earlier releases used,
        // so that a seed gives the same initial weights as before.
        let (conv1, maxpool) = if spec.imagenet_stem {
            let pool = spec.maxpool.then(|| {
                MaxPool2dConfig::new([3, 3])
                    .with_strides([2, 2])
                    .with_padding(PaddingConfig2d::Explicit(1, 1, 1, 1))
                    .init()
            });
            (conv(rng, 3, w, 7, 2, device), pool)
        } else {
            (conv(rng, 3, w, 3, 1, device), None)
        };
        let bn1 = bn(w, device);
        Self {
            conv1,
            bn1,
            maxpool,
            layer1,
            layer2,
            layer3,
            layer4,
        }
    }

    /// Pooled features, `[batch, feature_dim]`.
    pub fn forward(&self, x: Tensor<4>) -> Tensor<2> {
        self.pooled_at(x, "layer4")
            .expect("layer4 is one of ResNet::LAYERS")
    }

    /// The stages whose output [`ResNet::pooled_at`] can return, in order.
    pub const LAYERS: [&'static str; 5] = ["stem", "layer1", "layer2", "layer3", "layer4"];

    /// The raw output of stage `layer`'s last convolution (the stem's
    /// `conv1`, else the last block's last convolution), before batch norm
    /// and ReLU, averaged over space: `[batch, channels]`. What a forward
    /// hook on that `Conv2d` sees (RESQUE's authors read there).
    pub fn pooled_conv_at(&self, x: Tensor<4>, layer: &str) -> Option<Tensor<2>> {
        let last = Self::LAYERS.iter().position(|l| *l == layer)?;
        let out = if last == 0 {
            self.conv1.forward(x)
        } else {
            let mut x = conv_bn_forward(&self.conv1, &self.bn1, x, Epilogue::Relu);
            if let Some(pool) = &self.maxpool {
                x = pool.forward(x);
            }
            let stages = [&self.layer1, &self.layer2, &self.layer3, &self.layer4];
            for stage in &stages[..last - 1] {
                for block in stage.iter() {
                    x = block.forward(x);
                }
            }
            let stage = stages[last - 1];
            let (tail, head) = stage.split_last().expect("a stage has blocks");
            for block in head {
                x = block.forward(x);
            }
            tail.last_conv_output(x)
        };
        let [n, c, _, _] = out.dims();
        Some(adaptive_avg_pool2d(out, [1, 1]).reshape([n, c]))
    }

    /// The activations after stage `layer` (one of [`ResNet::LAYERS`]),
    /// averaged over space: `[batch, channels]`. `None` for another name.
    pub fn pooled_at(&self, x: Tensor<4>, layer: &str) -> Option<Tensor<2>> {
        let last = Self::LAYERS.iter().position(|l| *l == layer)?;
        let mut x = conv_bn_forward(&self.conv1, &self.bn1, x, Epilogue::Relu);
        if let Some(pool) = &self.maxpool {
            x = pool.forward(x);
        }
        let stages = [&self.layer1, &self.layer2, &self.layer3, &self.layer4];
        for stage in &stages[..last] {
            for block in stage.iter() {
                x = block.forward(x);
            }
        }
        let [n, c, _, _] = x.dims();
        Some(adaptive_avg_pool2d(x, [1, 1]).reshape([n, c]))
    }
}
