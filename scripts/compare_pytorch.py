#!/usr/bin/env python3
"""Side-by-side train-step throughput: reusebench vs PyTorch eager, same
machine, same workload.

Workload (identical on both sides): ResNet-18, CIFAR variant (3x3 stride-1
stem, no max-pool, basic blocks [2, 2, 2, 2], widths w/2w/4w/8w), 10
classes, a fixed random batch of 32x32 images already in memory, then
forward, cross-entropy, backward and one SGD step (lr 0.01, momentum 0.9),
repeated. Runs alternate (PyTorch, reusebench, PyTorch, ...) so that drift in
the machine's state hits both; the median of the rounds is reported.

Usage (from the repository root):

    scripts/compare_pytorch.py                      # widths 20 64, batches 32 128
    scripts/compare_pytorch.py --widths 20 --batches 32 --rounds 3
    scripts/compare_pytorch.py --device tch-cpu --reusebench target/release/reusebench
    scripts/compare_pytorch.py --compile            # adds torch.compile and its compile time

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

ROOT = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
VENV = os.path.join(ROOT, "target", "bench-venv")
TORCH_VERSION = "2.9.0"

# The PyTorch side, run in the venv's interpreter as a separate process.
TORCH_BENCH = r"""
import json, sys, time, torch
from torch import nn
width, batch, warmup, steps, threads, compiled = map(int, sys.argv[1:7])
torch.set_num_threads(threads)
torch.manual_seed(0)

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

model = ResNet18Cifar(width).train()
opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
# torch.compile compiles on the first call: the warm-up pays for it.
net = torch.compile(model) if compiled else model
x = torch.rand(batch, 3, 32, 32) * 2 - 1
y = torch.randint(0, 10, (batch,))
loss_fn = nn.CrossEntropyLoss()
def step():
    opt.zero_grad(set_to_none=True)
    loss_fn(net(x), y).backward()
    opt.step()
start = time.perf_counter()
for _ in range(max(warmup, 1 if compiled else 0)):
    step()
warmup_seconds = time.perf_counter() - start
start = time.perf_counter()
for _ in range(steps):
    step()
seconds = time.perf_counter() - start
print(json.dumps({"images_per_second": batch * steps / seconds, "warmup_seconds": warmup_seconds,
                  "torch": torch.__version__, "threads": threads}))
"""


def venv_python():
    py = os.path.join(VENV, "bin", "python")
    if not os.path.exists(py):
        print(f"creating {VENV} ...", file=sys.stderr)
        venv.EnvBuilder(with_pip=True, system_site_packages=True).create(VENV)
    probe = subprocess.run([py, "-c", "import torch; print(torch.__version__)"], capture_output=True, text=True)
    if probe.returncode != 0 or not probe.stdout.startswith(TORCH_VERSION):
        print(f"installing torch=={TORCH_VERSION} into {VENV} ...", file=sys.stderr)
        subprocess.run([py, "-m", "pip", "install", "-q", f"torch=={TORCH_VERSION}"], check=True)
    return py


def reusebench_binary(args):
    if args.reusebench:
        return args.reusebench
    cmd = ["cargo", "build", "--release", "-p", "reusebench"]
    if args.device.startswith("tch"):
        cmd += ["--features", "tch"]
    subprocess.run(cmd, cwd=ROOT, check=True)
    return os.path.join(ROOT, "target", "release", "reusebench")


def run_json(cmd, env=None):
    out = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if out.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed:\n{out.stdout}{out.stderr}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--widths", type=int, nargs="+", default=[20, 64])
    p.add_argument("--batches", type=int, nargs="+", default=[32, 128])
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--steps", type=int, default=10)
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--threads", type=int, default=os.cpu_count())
    p.add_argument("--device", default="cpu", help="reusebench device: cpu (flex) or tch-cpu")
    p.add_argument("--reusebench", help="a built reusebench binary (default: build one)")
    p.add_argument("--compile", action="store_true",
                   help="also time torch.compile (default mode), and report its compile time")
    args = p.parse_args()

    py = venv_python()
    binary = reusebench_binary(args)
    env = dict(os.environ)
    if args.device.startswith("tch"):
        lib = subprocess.run([py, "-c", "import torch, os; print(os.path.join(os.path.dirname(torch.__file__), 'lib'))"],
                             capture_output=True, text=True, check=True).stdout.strip()
        env["LD_LIBRARY_PATH"] = lib + ":" + env.get("LD_LIBRARY_PATH", "")
    rows = []
    for width in args.widths:
        for batch in args.batches:
            torch_rates, compiled, compile_secs, ours = [], [], [], []
            for _ in range(args.rounds):
                bench = [py, "-c", TORCH_BENCH, str(width), str(batch), str(args.warmup), str(args.steps),
                         str(args.threads)]
                torch_rates.append(run_json(bench + ["0"])["images_per_second"])
                if args.compile:
                    c = run_json(bench + ["1"])
                    compiled.append(c["images_per_second"])
                    compile_secs.append(c["warmup_seconds"])
                ours.append(run_json([binary, "bench", "--width", str(width), "--batch", str(batch), "--warmup",
                                      str(args.warmup), "--steps", str(args.steps), "--device", args.device],
                                     env=env)["images_per_second"])
            t, r = statistics.median(torch_rates), statistics.median(ours)
            c = statistics.median(compiled) if compiled else None
            cs = statistics.median(compile_secs) if compile_secs else None
            rows.append((width, batch, t, c, cs, r))
            extra = f", torch.compile {c:8.1f} img/s (compiling {cs:.0f} s)" if c else ""
            print(f"width {width:3d} batch {batch:4d}: PyTorch {t:8.1f} img/s{extra}, reusebench ({args.device}) "
                  f"{r:8.1f} img/s, ratio {r / t:.2f}x", file=sys.stderr, flush=True)
    print(f"\n{os.cpu_count()} CPU threads; median of {args.rounds} alternating rounds of {args.steps} steps "
          f"after {args.warmup} warm-up steps; PyTorch {TORCH_VERSION} eager"
          f"{' and torch.compile (default mode; its warm-up, which compiles, timed apart)' if args.compile else ''}, "
          f"reusebench device {args.device}\n")
    if args.compile:
        print("| width | batch | PyTorch eager img/s | torch.compile img/s | compile s | reusebench img/s | vs eager | vs compile |")
        print("|---|---|---|---|---|---|---|---|")
        for width, batch, t, c, cs, r in rows:
            print(f"| {width} | {batch} | {t:.1f} | {c:.1f} | {cs:.0f} | {r:.1f} | {r / t:.2f}x | {r / c:.2f}x |")
    else:
        print("| width | batch | PyTorch img/s | reusebench img/s | reusebench / PyTorch |")
        print("|---|---|---|---|---|")
        for width, batch, t, _, _, r in rows:
            print(f"| {width} | {batch} | {t:.1f} | {r:.1f} | {r / t:.2f}x |")

if __name__ == "__main__":
    main()
