"""The equiadapt side of scripts/compare_equiadapt.py (run in its venv with
one JSON argument; prints one JSON line)."""

import json
import math
import sys
import time

import equiadapt
import kornia as K
import numpy as np
import torch
from equiadapt.images.canonicalization.discrete_group import GroupEquivariantImageCanonicalization
from equiadapt.images.canonicalization_networks import ESCNNEquivariantNetwork
from equiadapt.images.canonicalization_networks.custom_equivariant_networks import CustomEquivariantNetwork
from omegaconf import OmegaConf
from torch import nn
from torch_resnet import CIFAR_MEAN, CIFAR_STD, ResNet18Cifar, load_reusebench, read_cifar

a = json.loads(sys.argv[1])
torch.manual_seed(a["seed"])
rng = np.random.default_rng(a["seed"])
torch.set_num_threads(a["threads"])
MEAN = torch.tensor(CIFAR_MEAN).view(1, 3, 1, 1)
STD = torch.tensor(CIFAR_STD).view(1, 3, 1, 1)

train_x, train_y = read_cifar(a["cifar"], [f"data_batch_{i}.bin" for i in range(1, 6)])
test_x, test_y = read_cifar(a["cifar"], ["test_batch.bin"])


def normalise(x_u8):
    return (x_u8.float() / 255.0 - MEAN) / STD


predictor = load_reusebench(ResNet18Cifar(a["width"], 10), a["backbone"], a["head"])
N = a["group_order"]
crop = a["crop_ratio"]
hyper = OmegaConf.create({"beta": 1.0, "input_crop_ratio": crop, "resize_shape": math.ceil(32 * crop)})
if a["network"] == "escnn":
    # e2cnn steerable convolutions (trivial -> regular representation of C_N),
    # inner batch norm, ReLU and dropout 0.5 between layers, group pooling at the end.
    network = ESCNNEquivariantNetwork(
        in_shape=(3, 32, 32), out_channels=a["channels"], kernel_size=a["kernel"],
        group_type="rotation", num_rotations=N, num_layers=a["layers"],
    )
else:
    network = CustomEquivariantNetwork(
        in_shape=(3, 32, 32), out_channels=a["channels"], kernel_size=a["kernel"],
        group_type="rotation", num_rotations=N, num_layers=a["layers"], device="cpu",
    )
    # equiadapt 0.1.2's CustomEquivariantNetwork does not keep these two, which
    # GroupEquivariantImageCanonicalization reads from it.
    network.group_type, network.num_rotations = "rotation", N
canon = GroupEquivariantImageCanonicalization(network, hyper, (3, 32, 32))
canon.device = torch.device("cpu")  # set by canonicalize(); the warm-up calls get_groupelement first

lr = a["lr"]
opt = torch.optim.SGD(
    [{"params": predictor.parameters(), "lr": lr}, {"params": canon.parameters(), "lr": lr * a["lr_scale"]}],
    lr=lr, momentum=0.9, weight_decay=5e-4,
)
batch = a["batch_size"]
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


# The prior-only warm-up, as reusebench's canon-prior: the canonicalizer alone
# on prior_weight x CE(group activations, identity) over the upright training
# images, at lr_scale x lr (cosine over the warm-up), predictor untouched.
prior_opt = torch.optim.SGD(canon.parameters(), lr=lr * a["lr_scale"], momentum=0.9, weight_decay=5e-4)
prior_total = steps_per_epoch * a["prior_epochs"]
prior_seconds = []
step = 0
for epoch in range(a["prior_epochs"]):
    canon.train()
    order = torch.from_numpy(rng.permutation(len(train_y)))
    started = time.perf_counter()
    for b in range(steps_per_epoch):
        idx = order[b * batch:(b + 1) * batch]
        prior_opt.param_groups[0]["lr"] = lr * a["lr_scale"] * 0.5 * (1 + math.cos(math.pi * step / prior_total))
        canon.get_groupelement(normalise(augment(train_x[idx])))
        loss = a["prior_weight"] * canon.get_prior_regularization_loss()
        prior_opt.zero_grad(set_to_none=True)
        loss.backward()
        prior_opt.step()
        step += 1
    prior_seconds.append(time.perf_counter() - started)

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
correct, mapped = [], 0
with torch.no_grad():
    x = normalise(test_x)
    for k in range(8):
        # Turned as equiadapt canonicalizes: edge padding, rotation, centre crop.
        turned = nn.functional.pad(x, (pad, pad, pad, pad), mode="replicate")
        turned = K.geometry.rotate(turned, torch.full((len(x),), 45.0 * k))[:, :, pad:pad + 32, pad:pad + 32]
        hits = 0
        for s in range(0, len(x), 256):
            hits += (predictor(canon(turned[s:s + 256])).argmax(1) == test_y[s:s + 256]).sum().item()
            if (k * N) % 8 == 0:
                # Turned by element k N / 8 of C_N: mapped upright when the canonicalizer
                # picks that element (it turns the image back by its inverse).
                picked = canon.canonicalization_info_dict["group_activations"].argmax(-1)
                mapped += (picked == k * N // 8).sum().item()
        correct.append(100.0 * hits / len(x))

mean = lambda v: sum(v) / max(len(v), 1)
print(json.dumps({
    "upright": correct[0], "c8_avg": sum(correct) / 8, "per_angle": correct,
    "mapped_upright": 100.0 * mapped / (len(x) * N),
    "seconds_per_epoch": mean(epoch_seconds), "prior_seconds_per_epoch": mean(prior_seconds),
    "equiadapt": getattr(equiadapt, "__version__", "0.1.2"), "torch": torch.__version__, "threads": a["threads"],
}))
