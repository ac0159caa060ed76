#!/usr/bin/env python3
"""Side-by-side train-step (or inference) throughput: reusebench vs PyTorch
eager, same machine, same workload.

Workload (identical on both sides): ResNet-18, CIFAR variant (3x3 stride-1
stem, no max-pool, basic blocks [2, 2, 2, 2], widths w/2w/4w/8w), 10
classes, a fixed random batch of 32x32 images already in memory, then
forward, cross-entropy, backward and one SGD step (lr 0.01, momentum 0.9),
repeated. With --inference: the forward pass alone, evaluation mode,
without a gradient graph (PyTorch: model.eval() under torch.no_grad()),
logits copied to the host on both sides: what evaluation and feature
extraction run. Runs alternate (PyTorch, reusebench, PyTorch, ...) so that drift in
the machine's state hits both; the median of the rounds is reported.

Usage (from the repository root):

    scripts/compare_pytorch.py                      # widths 20 64, batches 32 128
    scripts/compare_pytorch.py --widths 20 --batches 32 --rounds 3
    scripts/compare_pytorch.py --device tch-cpu --reusebench target/release/reusebench
    scripts/compare_pytorch.py --compile            # adds torch.compile and its compile time
    scripts/compare_pytorch.py --inference          # evaluation-mode forward passes
    scripts/compare_pytorch.py --arch vit-tiny      # torchvision's ViT at vit-tiny's shape (batches only)
    scripts/compare_pytorch.py --device cuda:0 --reusebench BIN   # on a GPU machine (a `cuda` build)

It creates a virtual environment with PyTorch 2.9.0 in target/bench-venv the
first time (reusing a system-wide torch 2.9.0 when there is one) and builds
`reusebench` in release mode unless --reusebench names a binary.
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import venv

import measured_run  # scripts/measured_run.py: a child's peak RSS

ROOT = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
VENV = os.path.join(ROOT, "target", "bench-venv")
TORCH_VERSION = "2.9.0"
TORCHVISION_VERSION = "0.24.0"  # the one built against torch 2.9.0

# The PyTorch side, run in the venv's interpreter as a separate process.
TORCH_BENCH = r"""
import json, sys, time, torch
from torch import nn
width, batch, warmup, steps, threads, compiled, inference = map(int, sys.argv[1:8])
dev = torch.device(sys.argv[8])
arch = sys.argv[9]
torch.set_num_threads(threads)
torch.manual_seed(0)
sync = torch.cuda.synchronize if dev.type == "cuda" else (lambda: None)

class Block(nn.Module):
    def __init__(self, cin, cout, stride):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False); self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False); self.bn2 = nn.BatchNorm2d(cout)
        self.down = None
        if stride != 1 or cin != cout:
            self.down = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))
    def forward(self, x):
        idt = x if self.down is None else self.down(x)
        out = torch.relu(self.bn1(self.conv1(x)))
        return torch.relu(self.bn2(self.conv2(out)) + idt)

class ResNet18Cifar(nn.Module):
    def __init__(self, w, classes=10):
        super().__init__()
        self.conv1 = nn.Conv2d(3, w, 3, 1, 1, bias=False); self.bn1 = nn.BatchNorm2d(w)
        layers, cin = [], w
        for i, cout in enumerate([w, 2 * w, 4 * w, 8 * w]):
            layers += [Block(cin, cout, 1 if i == 0 else 2), Block(cout, cout, 1)]
            cin = cout
        self.layers = nn.Sequential(*layers)
        self.fc = nn.Linear(8 * w, classes)
    def forward(self, x):
        x = self.layers(torch.relu(self.bn1(self.conv1(x))))
        return self.fc(torch.flatten(nn.functional.adaptive_avg_pool2d(x, 1), 1))

if arch == "vit-tiny":
    # torchvision's own ViT at reusebench's vit-tiny shape.
    from torchvision.models.vision_transformer import VisionTransformer
    model = VisionTransformer(image_size=32, patch_size=4, num_layers=6, num_heads=3,
                              hidden_dim=192, mlp_dim=768, num_classes=10)
else:
    model = ResNet18Cifar(width)
model = model.to(dev).train(not inference)
opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
# torch.compile compiles on the first call: the warm-up pays for it.
net = torch.compile(model) if compiled else model
x = (torch.rand(batch, 3, 32, 32) * 2 - 1).to(dev)
y = torch.randint(0, 10, (batch,)).to(dev)
loss_fn = nn.CrossEntropyLoss()
def step():
    opt.zero_grad(set_to_none=True)
    loss_fn(net(x), y).backward()
    opt.step()
def infer():
    with torch.no_grad():
        net(x).cpu()
work = infer if inference else step
start = time.perf_counter()
for _ in range(max(warmup, 1 if compiled else 0)):
    work()
sync()
warmup_seconds = time.perf_counter() - start
start = time.perf_counter()
for _ in range(steps):
    work()
sync()
seconds = time.perf_counter() - start
print(json.dumps({"images_per_second": batch * steps / seconds, "warmup_seconds": warmup_seconds,
                  "torch": torch.__version__, "threads": threads}))
"""


def cpu_model():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return "unknown CPU"


def venv_python(vit=False):
    py = os.path.join(VENV, "bin", "python")
    if not os.path.exists(py):
        print(f"creating {VENV} ...", file=sys.stderr)
        venv.EnvBuilder(with_pip=True, system_site_packages=True).create(VENV)
    probe = subprocess.run([py, "-c", "import torch; print(torch.__version__)"], capture_output=True, text=True)
    if probe.returncode != 0 or not probe.stdout.startswith(TORCH_VERSION):
        print(f"installing torch=={TORCH_VERSION} into {VENV} ...", file=sys.stderr)
        subprocess.run([py, "-m", "pip", "install", "-q", f"torch=={TORCH_VERSION}"], check=True)
    if vit and subprocess.run([py, "-c", "import torchvision"], capture_output=True).returncode != 0:
        print(f"installing torchvision=={TORCHVISION_VERSION} into {VENV} ...", file=sys.stderr)
        subprocess.run([py, "-m", "pip", "install", "-q", f"torchvision=={TORCHVISION_VERSION}"], check=True)
    return py


def reusebench_binary(args):
    if args.reusebench:
        return args.reusebench
    cmd = ["cargo", "build", "--release", "-p", "reusebench"]
    if args.device.startswith("tch"):
        cmd += ["--features", "tch"]
    elif args.device.startswith("cuda"):
        cmd += ["--features", "cuda"]
    subprocess.run(cmd, cwd=ROOT, check=True)
    return os.path.join(ROOT, "target", "release", "reusebench")


def run_json(cmd, env=None):
    """The last line of the command's output as JSON, with the process's
    peak RSS in MB under `peak_mb`."""
    code, stdout, stderr, peak_mb = measured_run.run(cmd, env=env)
    if code != 0:
        raise SystemExit(f"{' '.join(cmd)} failed:\n{stdout}{stderr}")
    out = json.loads(stdout.strip().splitlines()[-1])
    out["peak_mb"] = peak_mb
    return out


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--arch", choices=["resnet18-cifar", "vit-tiny"], default="resnet18-cifar",
                   help="the model on both sides; vit-tiny ignores --widths (patch 4, dim 192, depth 6, 3 heads)")
    p.add_argument("--widths", type=int, nargs="+", default=[20, 64])
    p.add_argument("--batches", type=int, nargs="+", default=[32, 128])
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--steps", type=int, default=10)
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--threads", type=int, default=os.cpu_count())
    p.add_argument("--device", default="cpu",
                   help="reusebench device: cpu (flex), tch-cpu, or cuda:N (PyTorch then runs on that GPU too)")
    p.add_argument("--python", help="an interpreter whose torch to use as it is (e.g. a GPU machine's own), "
                                    "instead of the venv with torch " + TORCH_VERSION)
    p.add_argument("--inference", action="store_true",
                   help="time evaluation-mode forward passes (no autodiff) instead of train steps")
    p.add_argument("--reusebench", help="a built reusebench binary (default: build one)")
    p.add_argument("--compile", action="store_true",
                   help="also time torch.compile (default mode), and report its compile time")
    args = p.parse_args()

    vit = args.arch == "vit-tiny"
    if vit:
        args.widths = [192]  # the ViT's dim, as a label
    py = args.python or venv_python(vit)
    torch_version = subprocess.run([py, "-c", "import torch; print(torch.__version__)"], capture_output=True,
                                   text=True, check=True).stdout.strip()
    binary = reusebench_binary(args)
    env = dict(os.environ)
    if args.device.startswith("tch"):
        lib = subprocess.run([py, "-c", "import torch, os; print(os.path.join(os.path.dirname(torch.__file__), 'lib'))"],
                             capture_output=True, text=True, check=True).stdout.strip()
        env["LD_LIBRARY_PATH"] = lib + ":" + env.get("LD_LIBRARY_PATH", "")
    # PyTorch runs where reusebench does: the GPU for cuda:N / tch-cuda:N.
    torch_device = args.device.split("-")[-1] if "cuda" in args.device else "cpu"
    rows = []
    for width in args.widths:
        for batch in args.batches:
            torch_rates, compiled, compile_secs, ours = [], [], [], []
            torch_mb, compiled_mb, ours_mb = [], [], []
            for _ in range(args.rounds):
                bench = [py, "-c", TORCH_BENCH, str(width), str(batch), str(args.warmup), str(args.steps),
                         str(args.threads)]
                tail = [str(int(args.inference)), torch_device, args.arch]
                eager = run_json(bench + ["0"] + tail)
                torch_rates.append(eager["images_per_second"])
                torch_mb.append(eager["peak_mb"])
                if args.compile:
                    c = run_json(bench + ["1"] + tail)
                    compiled.append(c["images_per_second"])
                    compile_secs.append(c["warmup_seconds"])
                    compiled_mb.append(c["peak_mb"])
                mine = run_json([binary, "bench", "--arch", args.arch, "--width", str(width),
                                 "--batch", str(batch), "--warmup",
                                 str(args.warmup), "--steps", str(args.steps), "--device", args.device]
                                + (["--inference"] if args.inference else []),
                                env=env)
                ours.append(mine["images_per_second"])
                ours_mb.append(mine["peak_mb"])
            t, r = statistics.median(torch_rates), statistics.median(ours)
            c = statistics.median(compiled) if compiled else None
            cs = statistics.median(compile_secs) if compile_secs else None
            # Peak RSS: the largest over the rounds, each side's whole process.
            rows.append((width, batch, t, c, cs, r, max(torch_mb), max(compiled_mb, default=0), max(ours_mb)))
            extra = f", torch.compile {c:8.1f} img/s (compiling {cs:.0f} s)" if c else ""
            print(f"width {width:3d} batch {batch:4d}: PyTorch {t:8.1f} img/s{extra}, reusebench ({args.device}) "
                  f"{r:8.1f} img/s, ratio {r / t:.2f}x", file=sys.stderr, flush=True)
    what = "inference passes (eval, no autograd)" if args.inference else "train steps"
    print(f"\n{args.arch} on {cpu_model()}, {os.cpu_count()} CPU threads; median of {args.rounds} alternating rounds of {args.steps} {what} "
          f"after {args.warmup} warm-up ones; PyTorch {torch_version} on {torch_device}, eager"
          f"{' and torch.compile (default mode; its warm-up, which compiles, timed apart)' if args.compile else ''}, "
          f"reusebench device {args.device}\n")
    if args.compile:
        print("| width | batch | PyTorch eager img/s | torch.compile img/s | compile s | reusebench img/s | vs eager "
              "| vs compile | peak RSS MB, PyTorch eager / torch.compile / reusebench |")
        print("|---|---|---|---|---|---|---|---|---|")
        for width, batch, t, c, cs, r, tm, cm, rm in rows:
            print(f"| {width} | {batch} | {t:.1f} | {c:.1f} | {cs:.0f} | {r:.1f} | {r / t:.2f}x | {r / c:.2f}x "
                  f"| {tm:.0f} / {cm:.0f} / {rm:.0f} |")
    else:
        print("| width | batch | PyTorch img/s | reusebench img/s | reusebench / PyTorch "
              "| peak RSS MB, PyTorch / reusebench |")
        print("|---|---|---|---|---|---|")
        for width, batch, t, _, _, r, tm, _, rm in rows:
            print(f"| {width} | {batch} | {t:.1f} | {r:.1f} | {r / t:.2f}x | {tm:.0f} / {rm:.0f} |")

if __name__ == "__main__":
    main()
