#!/usr/bin/env python3
"""Side by side with Avalanche: the same continual cells in both, timed, with
their accuracy matrices and forgetting, and Avalanche's metric definitions
computed on reusebench's matrices.

The cell (identical on both sides): the CIFAR-10 subset beside the project,
classes 4-9 as 3 class-incremental tasks of 2, a width-20 ResNet-18 (CIFAR
variant) from one random start that both load (written by the PyTorch side
in torchvision's layout, read by reusebench as `backbone.weights` with
`keep_head`), 3 epochs per task, batch 32, SGD lr 0.01 momentum 0.9, random
crop (padding 4) and flip, class-IL evaluation after each task, no kNN, no
adaptation. Strategies and how their settings map:

  reusebench        Avalanche 0.6.0
  sgd               Naive
  lwf (λ, T)        LwF(alpha=λ, temperature=T)   reusebench multiplies the
                    distillation by T² (Hinton); Avalanche does not
  ewc (λ)           EWC(ewc_lambda=λ, mode=online, decay 1); reusebench's
                    Fisher is Mammoth's (per-sample), Avalanche's is the
                    squared minibatch-mean gradient: the same λ is weaker there
  mas (λ)           MAS(lambda_reg=λ, alpha=0.5)
  er (buffer 200)   Replay(mem_size=200)      reusebench fills the buffer by
                    reservoir sampling during training (Mammoth), so the
                    current task is replayed too; Avalanche fills it after
                    each task, split equally among tasks
  er-balanced       Replay(mem_size=200)      reusebench with
                    `buffer_update: experience-balanced`, Avalanche's rule
  joint             JointTraining (one training on all tasks)

Usage (from the repository root):

    scripts/compare_avalanche.py --reusebench target/release/reusebench
    scripts/compare_avalanche.py --methods sgd lwf --seeds 0 1

It creates target/avalanche-venv the first time (avalanche-lib 0.6.0,
torch 2.9.0). Times: reusebench's is its cell's wall time (training and the
evaluation after each task, with the forward-transfer reference it always
computes); Avalanche's is its `train` and `eval` calls (its import time is
printed apart).
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
VENV = os.path.join(ROOT, "target", "avalanche-venv")
WORK = os.path.join(ROOT, "target", "compare-avalanche")
CLASSES = [4, 5, 6, 7, 8, 9]
PER_TASK = 2

# reusebench method -> (grid entry, Avalanche strategy, its parameters)
METHODS = {
    "sgd": ("{ name: sgd, epochs: 3, optimizer: { lr: 0.01 } }", "naive", {}),
    "lwf": ("{ name: lwf, epochs: 3, optimizer: { lr: 0.01 }, lambda: 1.0, temperature: 2.0 }",
            "lwf", {"alpha": 1.0, "temperature": 2.0}),
    "ewc": ("{ name: ewc, epochs: 3, optimizer: { lr: 0.01 }, lambda: 100.0, fisher_samples: 300 }",
            "ewc", {"lambda": 100.0}),
    "mas": ("{ name: mas, epochs: 3, optimizer: { lr: 0.01 }, lambda: 0.1, importance_samples: 300 }",
            "mas", {"lambda": 0.1}),
    "er": ("{ name: er, epochs: 3, optimizer: { lr: 0.01 }, buffer_size: 200 }", "replay", {"mem_size": 200}),
    # The buffer filled as Avalanche fills it: after each task, split
    # equally among the tasks so far (reusebench's default is Mammoth's
    # reservoir during training, which also replays the current task).
    "er-balanced": ("{ name: er, epochs: 3, optimizer: { lr: 0.01 }, buffer_size: 200, "
                    "buffer_update: experience-balanced }", "replay", {"mem_size": 200}),
    "joint": ("{ name: joint, epochs: 3, optimizer: { lr: 0.01 } }", "joint", {}),
}


def venv_python():
    py = os.path.join(VENV, "bin", "python")
    if not os.path.exists(py):
        print(f"creating {VENV} ...", file=sys.stderr)
        venv.EnvBuilder(with_pip=True).create(VENV)
    probe = subprocess.run([py, "-c", "import avalanche, torch, safetensors"], capture_output=True)
    if probe.returncode != 0:
        print(f"installing avalanche-lib 0.6.0 and torch 2.9.0 into {VENV} ...", file=sys.stderr)
        subprocess.run([py, "-m", "pip", "install", "-q", "torch==2.9.0", "torchvision", "avalanche-lib==0.6.0",
                        "safetensors"], check=True)
    return py


def side(py, config):
    """The Avalanche side's JSON result, with its process's peak RSS in MB."""
    code, stdout, stderr, peak_mb = measured_run.run(
        [py, os.path.join(ROOT, "scripts", "avalanche_side.py"), json.dumps(config)])
    if code != 0:
        raise SystemExit(f"the Avalanche side failed:\n{stdout}{stderr[-4000:]}")
    out = json.loads(stdout.strip().splitlines()[-1])
    out["peak_mb"] = peak_mb
    return out


def grid_text(results, init, method, seed, cifar):
    return f"""name: compare-avalanche
results: {results}
device: cpu
experiments:
  - name: continual
    protocol: continual
    base:
      data: {{ name: cifar10, root: {cifar} }}
      classes: {CLASSES}
      classes_per_task: {PER_TASK}
      backbone: {{ arch: resnet18-cifar, width: 20, weights: "{init}", keep_head: true }}
      batch_size: 32
      knn: null
      method: {METHODS[method][0]}
      seed: {seed}
"""


def reusebench_cells(results):
    """(method, seed) -> matrices and seconds, from the cells' files."""
    out = {}
    cells = os.path.join(results, "cells")
    for cell in sorted(os.listdir(cells)):
        rows_path = os.path.join(cells, cell, "rows.json")
        if not os.path.exists(rows_path):
            continue
        rows = json.load(open(rows_path))
        status = json.load(open(os.path.join(cells, cell, "status.json")))
        matrix = lambda metric: [
            [next(r["value"] for r in rows if r["metric"] == metric
                  and r.get("coords", {}).get("after_task") == i and r["coords"].get("task") == j)
             for j in range(i + 1)]
            for i in range(len(CLASSES) // PER_TASK)
        ]
        try:
            cil, til = matrix("acc_class_il"), matrix("acc_task_il")
        except StopIteration:  # joint: one row, after the last task
            full = lambda metric: [[next(r["value"] for r in rows if r["metric"] == metric
                                         and r.get("coords", {}).get("task") == j)
                                    for j in range(len(CLASSES) // PER_TASK)]]
            cil, til = full("acc_class_il"), full("acc_task_il")
        out[(rows[0]["method"], rows[0]["seed"])] = {"class_il": cil, "task_il": til, "seconds": status["seconds"]}
    return out


def test_counts(cifar):
    """Test images per task (Avalanche's stream accuracy weighs by them)."""
    with open(os.path.join(cifar, "test_batch.bin"), "rb") as f:
        raw = f.read()
    labels = raw[::3073]
    return [sum(1 for y in labels if y in CLASSES[t * PER_TASK:(t + 1) * PER_TASK])
            for t in range(len(CLASSES) // PER_TASK)]


def final_mean(m):
    return statistics.mean(m[-1])


def chaudhry_forgetting(m):
    """reusebench's `forgetting_*` (Chaudhry): mean over j < T-1 of
    max_{i<T-1} R[i][j] - R[T-1][j]."""
    t = len(m)
    if t < 2:
        return float("nan")
    return statistics.mean(max(m[i][j] for i in range(j, t - 1)) - m[-1][j] for j in range(t - 1))


def avalanche_forgetting(m):
    """Avalanche's StreamForgetting: mean over j < T-1 of R[j][j] - R[T-1][j]."""
    t = len(m)
    if t < 2:
        return float("nan")
    return statistics.mean(m[j][j] - m[-1][j] for j in range(t - 1))


def weighted_final(m, counts):
    """Avalanche's stream accuracy of the final model: per-image, not per task."""
    return sum(a * n for a, n in zip(m[-1], counts)) / sum(counts)


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--methods", nargs="+", default=list(METHODS), choices=list(METHODS))
    p.add_argument("--seeds", type=int, nargs="+", default=[0])
    p.add_argument("--cifar", default=os.path.join(ROOT, "..", "shared", "datasets", "cifar-10-subset",
                                                   "cifar-10-batches-bin"))
    p.add_argument("--reusebench", help="a built reusebench binary (default: target/release/reusebench)")
    p.add_argument("--threads", type=int, default=os.cpu_count())
    args = p.parse_args()
    binary = args.reusebench or os.path.join(ROOT, "target", "release", "reusebench")
    if not os.path.exists(binary):
        raise SystemExit(f"{binary}: build it first (cargo build --release) or pass --reusebench")
    py = venv_python()
    os.makedirs(WORK, exist_ok=True)
    counts = test_counts(args.cifar)

    results = {}
    for seed in args.seeds:
        init = os.path.join(WORK, f"init-seed{seed}.safetensors")
        side(py, {"mode": "init", "seed": seed, "width": 20, "classes": CLASSES, "path": init, "threads": 1})
        for method in args.methods:
            out = os.path.join(WORK, f"results-seed{seed}-{method}")
            grid = os.path.join(WORK, f"grid-seed{seed}-{method}.yaml")
            with open(grid, "w") as f:
                f.write(grid_text(out, init, method, seed, args.cifar))
            # Alternate the two sides, one method at a time.
            code, stdout, stderr, ours_mb = measured_run.run([binary, "run", grid, "--no-report", "--force"])
            if code != 0:
                raise SystemExit(f"reusebench failed:\n{stdout}{stderr}")
            theirs = side(py, {
                "mode": "run", "seed": seed, "width": 20, "classes": CLASSES, "classes_per_task": PER_TASK,
                "cifar": args.cifar, "init": init, "epochs": 3, "lr": 0.01, "batch_size": 32,
                "strategy": METHODS[method][1], "params": METHODS[method][2], "threads": args.threads,
            })
            results[(method, seed)] = {"avalanche": theirs, "reusebench_mb": ours_mb}
            # One cell per results folder (er and er-balanced share a label).
            for cell in reusebench_cells(out).values():
                results[(method, seed)]["reusebench"] = cell
            print(f"{method} seed {seed}: reusebench {results[(method, seed)]['reusebench']['seconds']:.1f} s, "
                  f"Avalanche {theirs['seconds']:.1f} s", file=sys.stderr, flush=True)

    print(f"\n{os.cpu_count()} CPU threads; CIFAR-10 subset, classes 4-9 as 3 tasks of 2, width-20 ResNet-18 "
          f"from the same random start, 3 epochs per task, batch 32; seeds {args.seeds}\n")
    print("Accuracies: mean over seeds (min-max over seeds).\n")
    print("| method | reusebench s | Avalanche s | ratio | final class-IL (rb / av) | final task-IL (rb / av) "
          "| forgetting, Chaudhry (rb / av) | forgetting, Avalanche's (rb / av) | peak RSS MB (rb / av) |")
    print("|---|---|---|---|---|---|---|---|---|")
    checks = []
    for method in args.methods:
        rows = [results[(method, s)] for s in args.seeds if "reusebench" in results[(method, s)]]
        if not rows:
            continue
        mean = lambda f: statistics.mean(f(r) for r in rows)
        rb_s, av_s = mean(lambda r: r["reusebench"]["seconds"]), mean(lambda r: r["avalanche"]["seconds"])
        def one(f, side):
            # The mean, and the range over seeds where there are several:
            # differences are read against that spread.
            values = [f(r[side]) for r in rows]
            m = statistics.mean(values)
            return f"{m:.2f}" + (f" ({min(values):.1f}-{max(values):.1f})" if len(values) > 1 else "")
        fmt = lambda f: f"{one(f, 'reusebench')} / {one(f, 'avalanche')}"
        if method == "joint":
            # One training after the last task: no forgetting to speak of.
            fgt = lambda f: "–"
        else:
            fgt = fmt
        print(f"| {method} | {rb_s:.1f} | {av_s:.1f} | {av_s / rb_s:.2f}x "
              f"| {fmt(lambda c: final_mean(c['class_il']))} | {fmt(lambda c: final_mean(c['task_il']))} "
              f"| {fgt(lambda c: chaudhry_forgetting(c['class_il']))} "
              f"| {fgt(lambda c: avalanche_forgetting(c['class_il']))} "
              f"| {max(r['reusebench_mb'] for r in rows):.0f} / {max(r['avalanche']['peak_mb'] for r in rows):.0f} |")
        for r in rows:
            av = r["avalanche"]
            # Avalanche's own numbers, recomputed from this script's matrix of
            # the same model (argmax over every output, as Avalanche takes it):
            # the definitions must agree exactly.
            ours_acc = weighted_final(av["class_il_all"], counts)
            ours_fgt = avalanche_forgetting(av["class_il_all"]) if method != "joint" else None
            checks.append((method, av["avalanche_stream_accuracy"] * 100, ours_acc,
                           None if av["avalanche_stream_forgetting"] is None or ours_fgt is None
                           else (av["avalanche_stream_forgetting"] * 100, ours_fgt)))
    print("\nAvalanche's metrics against their definitions applied to the same model's accuracy matrix:")
    print("| method | Avalanche stream acc | recomputed | Avalanche stream forgetting | recomputed |")
    print("|---|---|---|---|---|")
    for method, acc, recomputed, fgt in checks:
        f = f"{fgt[0]:.4f} | {fgt[1]:.4f}" if fgt else "– | –"
        print(f"| {method} | {acc:.4f} | {recomputed:.4f} | {f} |")
    imports = statistics.mean(r["avalanche"]["import_seconds"] for r in results.values())
    print(f"\nAvalanche's import time: {imports:.1f} s per process (not in the times above); "
          f"torch {next(iter(results.values()))['avalanche']['torch']}.")


if __name__ == "__main__":
    main()
