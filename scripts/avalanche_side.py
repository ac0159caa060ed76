"""The Avalanche side of scripts/compare_avalanche.py (run in its venv with
one JSON argument; prints one JSON line).

mode "init": writes a randomly initialised ResNet-18 (CIFAR variant) in
torchvision's layout, the start both sides load.
mode "run": one strategy over the class-incremental CIFAR-10 sequence."""

import json
import os
import sys
import time

started = time.perf_counter()
import torch  # noqa: E402
from torch import nn  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from torch_resnet import CIFAR_MEAN, CIFAR_STD, ResNet18Cifar, read_cifar, save_torchvision  # noqa: E402

a = json.loads(sys.argv[1])
torch.set_num_threads(a["threads"])
torch.manual_seed(a["seed"])
classes = a["classes"]

if a["mode"] == "init":
    model = ResNet18Cifar(a["width"], len(classes))
    save_torchvision(model, a["path"])
    print(json.dumps({"path": a["path"]}))
    sys.exit(0)

from avalanche.benchmarks.scenarios.deprecated.generators import nc_benchmark  # noqa: E402
from avalanche.evaluation.metrics import accuracy_metrics, forgetting_metrics  # noqa: E402
from avalanche.training import EWC, MAS, LwF, Naive, Replay  # noqa: E402
from avalanche.training.plugins import EvaluationPlugin  # noqa: E402
from avalanche.training.supervised.joint_training import JointTraining  # noqa: E402
from safetensors.torch import load_file  # noqa: E402
from torchvision import transforms  # noqa: E402

import_seconds = time.perf_counter() - started


class Images(torch.utils.data.Dataset):
    """uint8 images as float tensors in [0, 1], labels renumbered 0..n."""

    def __init__(self, x, y):
        self.x, self.targets = x, y.tolist()

    def __len__(self):
        return len(self.targets)

    def __getitem__(self, i):
        return self.x[i].float() / 255.0, self.targets[i]


def split(x, y):
    keep = torch.zeros_like(y, dtype=torch.bool)
    relabel = torch.full((10,), -1, dtype=torch.long)
    for new, c in enumerate(classes):
        keep |= y == c
        relabel[c] = new
    return Images(x[keep], relabel[y[keep]])


train_x, train_y = read_cifar(a["cifar"], [f"data_batch_{i}.bin" for i in range(1, 6)])
test_x, test_y = read_cifar(a["cifar"], ["test_batch.bin"])
train, test = split(train_x, train_y), split(test_x, test_y)
normalise = transforms.Normalize(CIFAR_MEAN, CIFAR_STD)
# reusebench's default for CIFAR: crop with zero padding 4, horizontal flip.
train_transform = transforms.Compose(
    [transforms.RandomCrop(32, padding=4), transforms.RandomHorizontalFlip(), normalise]
)
tasks = len(classes) // a["classes_per_task"]
bench = nc_benchmark(
    train,
    test,
    n_experiences=tasks,
    task_labels=False,
    fixed_class_order=list(range(len(classes))),
    train_transform=train_transform,
    eval_transform=normalise,
)

model = ResNet18Cifar(a["width"], len(classes))
state = load_file(a["init"])
model.load_state_dict(state, strict=False)
optimizer = torch.optim.SGD(model.parameters(), lr=a["lr"], momentum=0.9)
evaluator = EvaluationPlugin(
    accuracy_metrics(experience=True, stream=True),
    forgetting_metrics(experience=True, stream=True),
    loggers=[],
)
common = dict(
    model=model,
    optimizer=optimizer,
    criterion=nn.CrossEntropyLoss(),
    train_mb_size=a["batch_size"],
    train_epochs=a["epochs"],
    eval_mb_size=256,
    device="cpu",
    evaluator=evaluator,
)
name, p = a["strategy"], a.get("params", {})
strategy = {
    "naive": lambda: Naive(**common),
    "lwf": lambda: LwF(alpha=p["alpha"], temperature=p["temperature"], **common),
    "ewc": lambda: EWC(ewc_lambda=p["lambda"], mode="online", decay_factor=p.get("decay", 1.0), **common),
    "mas": lambda: MAS(lambda_reg=p["lambda"], alpha=p.get("alpha", 0.5), **common),
    "replay": lambda: Replay(mem_size=p["mem_size"], **common),
    "joint": lambda: JointTraining(**common),
}[name]()


def masked_accuracy(j, allowed):
    """Accuracy on test experience j, argmax over the `allowed` classes."""
    exp = bench.test_stream[j]
    loader = torch.utils.data.DataLoader(exp.dataset.eval(), batch_size=256)
    hits = total = 0
    model.eval()
    with torch.no_grad():
        for batch in loader:
            x, y = batch[0], batch[1]
            out = model(x)[:, allowed]
            hits += (out.argmax(1) + allowed.start == y).sum().item()
            total += len(y)
    return 100.0 * hits / total


per = a["classes_per_task"]
everything = range(0, len(classes))
# class_il_all: argmax over every output, seen or not (what Avalanche's
# accuracy metric takes).
class_il, class_il_all, task_il, metrics = [], [], [], {}
# Timed: Avalanche's own training and evaluation (its eval of the whole
# test stream after each experience); the accuracy matrices below are
# extra passes of this script's, left out of the time.
seconds = 0.0
if name == "joint":
    start = time.perf_counter()
    strategy.train(bench.train_stream)
    metrics = strategy.eval(bench.test_stream)
    seconds += time.perf_counter() - start
    class_il.append([masked_accuracy(j, range(0, tasks * per)) for j in range(tasks)])
    class_il_all.append([masked_accuracy(j, everything) for j in range(tasks)])
    task_il.append([masked_accuracy(j, range(j * per, (j + 1) * per)) for j in range(tasks)])
else:
    for t, exp in enumerate(bench.train_stream):
        start = time.perf_counter()
        strategy.train(exp)
        metrics = strategy.eval(bench.test_stream)
        seconds += time.perf_counter() - start
        seen = (t + 1) * per
        class_il.append([masked_accuracy(j, range(0, seen)) for j in range(t + 1)])
        class_il_all.append([masked_accuracy(j, everything) for j in range(t + 1)])
        task_il.append([masked_accuracy(j, range(j * per, (j + 1) * per)) for j in range(t + 1)])


def stream_value(prefix):
    for k, v in metrics.items():
        if k.startswith(prefix) and "test_stream" in k:
            return float(v)
    return None


print(json.dumps({
    "seconds": seconds,
    "import_seconds": import_seconds,
    "class_il": class_il,
    "class_il_all": class_il_all,
    "task_il": task_il,
    "avalanche_stream_accuracy": stream_value("Top1_Acc_Stream"),
    "avalanche_stream_forgetting": stream_value("StreamForgetting"),
    "torch": torch.__version__,
}))
