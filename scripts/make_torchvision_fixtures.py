#!/usr/bin/env python3
"""Regenerate the torchvision-layout parity fixtures in
crates/core/tests/fixtures/torchvision/.

Needs torch (2.9), safetensors and, for the layout check, torchvision:

    pip install torch==2.9.0 torchvision==0.24.0 safetensors numpy
    python3 scripts/make_torchvision_fixtures.py

The models are small-width copies of torchvision's ResNet-18 / ResNet-50:
every parameter and buffer has torchvision's name, and at width 64 the
state_dict equals torchvision's key for key and shape for shape (checked
below when torchvision is installed; the key list is written out so that the
Rust tests check the full-size layout without Python). Weights and batch-norm
running statistics are random with a fixed seed; the expected outputs are
computed in eval mode on a fixed input. The Rust tests never run Python.
"""

import json
import os
import sys

import torch
from torch import nn
from safetensors.torch import save_file

OUT = os.path.join(os.path.dirname(__file__), "..", "crates", "core", "tests", "fixtures", "torchvision")
WIDTH = 4
CLASSES = 10


class BasicBlock(nn.Module):
    expansion = 1

    def __init__(self, cin, planes, stride):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, planes, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(planes, planes, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.downsample = None
        if stride != 1 or cin != planes:
            self.downsample = nn.Sequential(nn.Conv2d(cin, planes, 1, stride, bias=False), nn.BatchNorm2d(planes))

    def forward(self, x):
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + identity)


class Bottleneck(nn.Module):
    expansion = 4

    def __init__(self, cin, planes, stride):
        super().__init__()
        out = planes * 4
        self.conv1 = nn.Conv2d(cin, planes, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        # torchvision (v1.5) strides the 3x3 convolution, not the first 1x1.
        self.conv2 = nn.Conv2d(planes, planes, 3, stride, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv3 = nn.Conv2d(planes, out, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(out)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = None
        if stride != 1 or cin != out:
            self.downsample = nn.Sequential(nn.Conv2d(cin, out, 1, stride, bias=False), nn.BatchNorm2d(out))

    def forward(self, x):
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        return self.relu(out + identity)


class ResNet(nn.Module):
    def __init__(self, block, layers, width, classes, maxpool=True):
        super().__init__()
        self.conv1 = nn.Conv2d(3, width, 7, 2, 3, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(3, 2, 1) if maxpool else nn.Identity()
        cin = width
        for i, n in enumerate(layers):
            planes = width * 2**i
            blocks = []
            for j in range(n):
                blocks.append(block(cin, planes, 2 if (i > 0 and j == 0) else 1))
                cin = planes * block.expansion
            setattr(self, f"layer{i + 1}", nn.Sequential(*blocks))
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(cin, classes)

    def features(self, x):
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        for i in range(4):
            x = getattr(self, f"layer{i + 1}")(x)
        return torch.flatten(self.avgpool(x), 1)

    def forward(self, x):
        return self.fc(self.features(x))


ARCHS = {"resnet18": (BasicBlock, [2, 2, 2, 2]), "resnet50": (Bottleneck, [3, 4, 6, 3])}


def randomize(model, gen):
    """Random weights and running statistics, so that a loader that skips a
    buffer or swaps two tensors changes the outputs."""
    with torch.no_grad():
        for name, t in model.state_dict().items():
            if name.endswith("num_batches_tracked"):
                t.fill_(7)
            elif name.endswith("running_var"):
                t.copy_(torch.rand(t.shape, generator=gen) + 0.5)
            elif name.endswith("running_mean"):
                t.copy_(torch.randn(t.shape, generator=gen) * 0.1)
            elif t.dim() == 4:
                fan_in = t.shape[1] * t.shape[2] * t.shape[3]
                t.copy_(torch.randn(t.shape, generator=gen) * (2.0 / fan_in) ** 0.5)
            else:
                t.copy_(torch.randn(t.shape, generator=gen) * 0.2 + (1.0 if name.endswith("bn1.weight") else 0.0))


def layout(model):
    return [[k, list(v.shape)] for k, v in model.state_dict().items()]


def check_against_torchvision():
    try:
        import torchvision
    except ImportError:
        print("torchvision not installed: layout check skipped, key list not rewritten", file=sys.stderr)
        return
    keys = {}
    for arch, (block, layers) in ARCHS.items():
        ours = layout(ResNet(block, layers, 64, 1000))
        theirs = layout(getattr(torchvision.models, arch)(weights=None))
        assert ours == theirs, f"{arch}: layout differs from torchvision"
        keys[arch] = theirs
    with open(os.path.join(OUT, "torchvision_layout.json"), "w") as f:
        json.dump({"torchvision": torchvision.__version__, "layouts": keys}, f, separators=(",", ":"))
        f.write("\n")
    print(f"layouts match torchvision {torchvision.__version__}")


def main():
    os.makedirs(OUT, exist_ok=True)
    check_against_torchvision()
    gen = torch.Generator().manual_seed(20261122)
    x = torch.randn(2, 3, 32, 32, generator=gen)
    expected = {"input": x}
    for arch, (block, layers) in ARCHS.items():
        model = ResNet(block, layers, WIDTH, CLASSES).eval()
        randomize(model, gen)
        sd = {k: v.contiguous() for k, v in model.state_dict().items()}
        torch.save(sd, os.path.join(OUT, f"{arch}_w{WIDTH}.pth"))
        save_file(sd, os.path.join(OUT, f"{arch}_w{WIDTH}.safetensors"))
        with torch.no_grad():
            expected[f"{arch}.features"] = model.features(x)
            expected[f"{arch}.logits"] = model(x)
            if arch == "resnet18":
                small = ResNet(block, layers, WIDTH, CLASSES, maxpool=False).eval()
                small.load_state_dict(sd)
                expected[f"{arch}_nomaxpool.features"] = small.features(x)
                # A training checkpoint as many scripts write it: wrapped in a
                # dict and saved from nn.DataParallel ("module." prefixes).
                wrapped = {"epoch": 3, "state_dict": {f"module.{k}": v for k, v in sd.items()}}
                torch.save(wrapped, os.path.join(OUT, f"{arch}_w{WIDTH}_wrapped.pth"))
    save_file({k: v.contiguous() for k, v in expected.items()}, os.path.join(OUT, "expected.safetensors"))
    print(f"fixtures written to {os.path.normpath(OUT)}")


if __name__ == "__main__":
    main()
