"""The equiadapt side of scripts/compare_equiadapt.py (run in its venv with
one JSON argument; prints one JSON line)."""

import json
import math
import os
import sys
import time

import equiadapt
import kornia as K
import numpy as np
import torch
from equiadapt.images.canonicalization.discrete_group import GroupEquivariantImageCanonicalization
from equiadapt.images.canonicalization_networks.custom_equivariant_networks import CustomEquivariantNetwork
from omegaconf import OmegaConf
from safetensors.numpy import load_file
from torch import nn

a = json.loads(sys.argv[1])
torch.manual_seed(a["seed"])
rng = np.random.default_rng(a["seed"])
torch.set_num_threads(a["threads"])
# CIFAR-10's per-channel statistics (reusebench's default normalisation).
MEAN = torch.tensor([0.4914, 0.4822, 0.4465]).view(1, 3, 1, 1)
STD = torch.tensor([0.2470, 0.2435, 0.2616]).view(1, 3, 1, 1)


def read(name):
    raw = np.fromfile(os.path.join(a["cifar"], name), dtype=np.uint8).reshape(-1, 3073)
    return torch.from_numpy(raw[:, 1:].reshape(-1, 3, 32, 32).copy()), torch.from_numpy(raw[:, 0].astype(np.int64))


parts = [read(f"data_batch_{i}.bin") for i in range(1, 6)]
train_x = torch.cat([p[0] for p in parts])
train_y = torch.cat([p[1] for p in parts])
test_x, test_y = read("test_batch.bin")


def normalise(x_u8):
    return (x_u8.float() / 255.0 - MEAN) / STD


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
    """reusebench's resnet18-cifar (torchvision names)."""

    def __init__(self, w, classes=10):
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


def load_predictor():
    model = ResNet18Cifar(a["width"])
    state = {}
    for k, v in load_file(a["backbone"]).items():
        # burn's names: gamma/beta for batch norm, downsample.{conv,bn}.
        k = k.replace(".gamma", ".weight").replace(".beta", ".bias")
        k = k.replace("downsample.conv", "downsample.0").replace("downsample.bn", "downsample.1")
        state[k] = torch.from_numpy(v.copy())
    head = load_file(a["head"])
    state["fc.weight"] = torch.from_numpy(head["weight"].T.copy())  # burn stores [in, out]
    state["fc.bias"] = torch.from_numpy(head["bias"].copy())
    missing, unexpected = model.load_state_dict(state, strict=False)
    missing = [m for m in missing if not m.endswith("num_batches_tracked")]
    if missing or unexpected:
        raise SystemExit(f"predictor weights do not match: missing {missing}, unexpected {unexpected}")
    return model


predictor = load_predictor()
hyper = OmegaConf.create({"beta": 1.0, "input_crop_ratio": 0.8, "resize_shape": math.ceil(32 * 0.8)})
network = CustomEquivariantNetwork(
    in_shape=(3, 32, 32), out_channels=a["channels"], kernel_size=5,
    group_type="rotation", num_rotations=8, num_layers=3, device="cpu",
)
# equiadapt 0.1.2's CustomEquivariantNetwork does not keep these two, which
# GroupEquivariantImageCanonicalization reads from it.
network.group_type, network.num_rotations = "rotation", 8
canon = GroupEquivariantImageCanonicalization(network, hyper, (3, 32, 32))

lr = a["lr"]
opt = torch.optim.SGD(
    [{"params": predictor.parameters(), "lr": lr}, {"params": canon.parameters(), "lr": lr * a["lr_scale"]}],
    lr=lr, momentum=0.9, weight_decay=5e-4,
)
batch = 32
steps_per_epoch = len(train_y) // batch  # the last partial batch dropped, as reusebench
if a.get("max_steps"):  # a quick check of the script itself
    steps_per_epoch = min(steps_per_epoch, a["max_steps"])
total = steps_per_epoch * a["epochs"]
loss_fn = nn.CrossEntropyLoss()


def augment(x_u8):
    # Random crop (zero padding 4) and horizontal flip, per image.
    padded = nn.functional.pad(x_u8, (4, 4, 4, 4))
    out = torch.empty_like(x_u8)
    for i in range(len(x_u8)):
        dy, dx = rng.integers(0, 9, size=2)
        img = padded[i, :, dy:dy + 32, dx:dx + 32]
        out[i] = img.flip(-1) if rng.random() < 0.5 else img
    return out


step = 0
epoch_seconds = []
for epoch in range(a["epochs"]):
    predictor.train(); canon.train()
    order = torch.from_numpy(rng.permutation(len(train_y)))
    started = time.perf_counter()
    for b in range(steps_per_epoch):
        idx = order[b * batch:(b + 1) * batch]
        x = normalise(augment(train_x[idx]))
        scale = 0.5 * (1 + math.cos(math.pi * step / total))
        opt.param_groups[0]["lr"] = lr * scale
        opt.param_groups[1]["lr"] = lr * a["lr_scale"] * scale
        logits = predictor(canon(x))
        loss = loss_fn(logits, train_y[idx]) + a["prior_weight"] * canon.get_prior_regularization_loss()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        step += 1
    epoch_seconds.append(time.perf_counter() - started)

predictor.eval(); canon.eval()
pad = math.ceil(32 * 0.5)
correct = []
with torch.no_grad():
    x = normalise(test_x)
    for k in range(8):
        # Turned as equiadapt canonicalizes: edge padding, rotation, centre crop.
        turned = nn.functional.pad(x, (pad, pad, pad, pad), mode="replicate")
        turned = K.geometry.rotate(turned, torch.full((len(x),), 45.0 * k))[:, :, pad:pad + 32, pad:pad + 32]
        hits = 0
        for s in range(0, len(x), 256):
            hits += (predictor(canon(turned[s:s + 256])).argmax(1) == test_y[s:s + 256]).sum().item()
        correct.append(100.0 * hits / len(x))

print(json.dumps({
    "upright": correct[0], "c8_avg": sum(correct) / 8, "per_angle": correct,
    "seconds_per_epoch": sum(epoch_seconds) / len(epoch_seconds),
    "equiadapt": getattr(equiadapt, "__version__", "0.1.2"), "torch": torch.__version__, "threads": a["threads"],
}))
