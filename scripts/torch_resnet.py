"""reusebench's `resnet18-cifar` in PyTorch, with torchvision's parameter
names, and loading of reusebench's checkpoints (backbone and head
safetensors) into it. Shared by the side-by-side scripts' PyTorch sides."""

import numpy as np
import torch
from torch import nn

# CIFAR-10's per-channel statistics (reusebench's default normalisation).
CIFAR_MEAN = (0.4914, 0.4822, 0.4465)
CIFAR_STD = (0.2470, 0.2435, 0.2616)


class Block(nn.Module):
    def __init__(self, cin, cout, stride):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.downsample = None
        if stride != 1 or cin != cout:
            self.downsample = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))

    def forward(self, x):
        idt = x if self.downsample is None else self.downsample(x)
        out = torch.relu(self.bn1(self.conv1(x)))
        return torch.relu(self.bn2(self.conv2(out)) + idt)


class ResNet18Cifar(nn.Module):
    """3x3 stride-1 stem, no max-pool, basic blocks [2, 2, 2, 2], widths w..8w."""

    def __init__(self, w, classes):
        super().__init__()
        self.conv1 = nn.Conv2d(3, w, 3, 1, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(w)
        cin = w
        for i, cout in enumerate([w, 2 * w, 4 * w, 8 * w]):
            setattr(self, f"layer{i + 1}", nn.Sequential(Block(cin, cout, 1 if i == 0 else 2), Block(cout, cout, 1)))
            cin = cout
        self.fc = nn.Linear(8 * w, classes)

    def forward(self, x):
        x = torch.relu(self.bn1(self.conv1(x)))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return self.fc(torch.flatten(nn.functional.adaptive_avg_pool2d(x, 1), 1))


def load_reusebench(model, backbone_path, head_path):
    """Loads a reusebench backbone checkpoint and head into `model`."""
    from safetensors.numpy import load_file

    state = {}
    for k, v in load_file(backbone_path).items():
        # burn's names: gamma/beta for batch norm, downsample.{conv,bn}.
        k = k.replace(".gamma", ".weight").replace(".beta", ".bias")
        k = k.replace("downsample.conv", "downsample.0").replace("downsample.bn", "downsample.1")
        state[k] = torch.from_numpy(v.copy())
    head = load_file(head_path)
    state["fc.weight"] = torch.from_numpy(head["weight"].T.copy())  # burn stores [in, out]
    state["fc.bias"] = torch.from_numpy(head["bias"].copy())
    missing, unexpected = model.load_state_dict(state, strict=False)
    missing = [m for m in missing if not m.endswith("num_batches_tracked")]
    if missing or unexpected:
        raise SystemExit(f"weights do not match the model: missing {missing}, unexpected {unexpected}")
    return model


def save_torchvision(model, path):
    """The model's state in torchvision's layout (what reusebench's
    `backbone.weights` reads), as safetensors."""
    from safetensors.torch import save_file

    state = {k: v.detach().contiguous() for k, v in model.state_dict().items() if not k.endswith("num_batches_tracked")}
    save_file(state, path)


def read_cifar(root, names):
    """Images (uint8 [n, 3, 32, 32]) and labels of CIFAR-10 binary files."""
    import os

    xs, ys = [], []
    for name in names:
        raw = np.fromfile(os.path.join(root, name), dtype=np.uint8).reshape(-1, 3073)
        xs.append(raw[:, 1:].reshape(-1, 3, 32, 32))
        ys.append(raw[:, 0].astype(np.int64))
    return torch.from_numpy(np.concatenate(xs)), torch.from_numpy(np.concatenate(ys))
