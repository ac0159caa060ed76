#!/usr/bin/env python3
"""Side by side with equiadapt: its discrete C8 canonicalizer in front of the
same predictor, on the same data, against reusebench's `canon-prior` cells.

The predictor is the one a reusebench canonicalize grid pretrained (the
ResNet-18, CIFAR variant, its backbone and head safetensors). This script
loads it into an equivalent PyTorch module, puts equiadapt's
`CustomEquivariantNetwork` (C8, 3 layers, kernel 5) with
`GroupEquivariantImageCanonicalization` (crop 0.8, beta 1) in front, and
trains both as the grid's `canon-prior` cell does: SGD (momentum 0.9,
weight decay 5e-4, cosine), the canonicalizer at lr_scale x the
predictor's rate, loss = CE + prior_weight x equiadapt's prior loss, random
crop (padding 4) and flip. It evaluates on the CIFAR-10 test split turned
by every multiple of 45 degrees (edge padding, kornia rotation, centre
crop, as equiadapt canonicalizes) and prints upright and C8-averaged
accuracy and seconds per epoch beside reusebench's from the grid's rows.

Usage (from the repository root, after the grid has run):

    scripts/compare_equiadapt.py
    scripts/compare_equiadapt.py --results results/canonicalize-cifar10-subset-cpu --epochs 5 --seed 0

It creates target/equiadapt-venv the first time and installs equiadapt
0.1.2 (which brings torch, kornia and omegaconf) from PyPI.
"""

import argparse
import json
import os
import subprocess
import sys
import venv

ROOT = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
VENV = os.path.join(ROOT, "target", "equiadapt-venv")

def venv_python():
    py = os.path.join(VENV, "bin", "python")
    if not os.path.exists(py):
        print(f"creating {VENV} ...", file=sys.stderr)
        venv.EnvBuilder(with_pip=True).create(VENV)
    probe = subprocess.run([py, "-c", "import equiadapt, kornia, omegaconf, safetensors"], capture_output=True)
    if probe.returncode != 0:
        print(f"installing equiadapt==0.1.2 into {VENV} ...", file=sys.stderr)
        subprocess.run([py, "-m", "pip", "install", "-q", "equiadapt==0.1.2", "safetensors", "numpy"], check=True)
    return py


def reusebench_side(results, seed):
    """upright, C8-averaged accuracy and mean epoch seconds of the grid's
    canon-prior cell with `seed`."""
    cells = os.path.join(results, "cells")
    for cell in sorted(os.listdir(cells)):
        path = os.path.join(cells, cell, "rows.json")
        if not os.path.exists(path):
            continue
        rows = json.load(open(path))
        if not rows or rows[0]["method"] != "canon-prior" or rows[0]["seed"] != seed:
            continue
        get = lambda m: next(r["value"] for r in rows if r["metric"] == m and not r.get("coords"))
        secs = [r["value"] for r in rows if r["metric"] == "curve_seconds"]
        return get("acc_upright"), get("acc_c8_avg"), sum(secs) / max(len(secs), 1)
    raise SystemExit(f"no canon-prior cell with seed {seed} under {cells}: run the grid first")


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--results", default=os.path.join(ROOT, "results", "canonicalize-cifar10-subset-cpu"))
    p.add_argument("--cifar", default=os.path.join(ROOT, "..", "shared", "datasets", "cifar-10-subset", "cifar-10-batches-bin"))
    p.add_argument("--epochs", type=int, default=5)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--lr", type=float, default=0.01)
    p.add_argument("--lr-scale", type=float, default=0.1)
    p.add_argument("--prior-weight", type=float, default=100.0)
    p.add_argument("--channels", type=int, default=16)
    p.add_argument("--width", type=int, default=20)
    p.add_argument("--threads", type=int, default=os.cpu_count())
    args = p.parse_args()

    pre = os.path.join(args.results, "pretrained")
    config = {
        "seed": args.seed, "threads": args.threads, "cifar": args.cifar, "epochs": args.epochs,
        "lr": args.lr, "lr_scale": args.lr_scale, "prior_weight": args.prior_weight,
        "channels": args.channels, "width": args.width,
        "backbone": os.path.join(pre, f"cifar10-r18w{args.width}.safetensors"),
        "head": os.path.join(pre, f"cifar10-r18w{args.width}-head.safetensors"),
    }
    side = os.path.join(ROOT, "scripts", "equiadapt_side.py")
    out = subprocess.run([venv_python(), side, json.dumps(config)], capture_output=True, text=True)
    if out.returncode != 0:
        raise SystemExit(f"the equiadapt side failed:\n{out.stdout}{out.stderr}")
    theirs = json.loads(out.stdout.strip().splitlines()[-1])
    up, c8, secs = reusebench_side(args.results, args.seed)
    print(f"C8 canonicalizer with the prior, seed {args.seed}, {args.epochs} epochs, CIFAR-10 subset")
    print(f"{'':12} {'upright':>8} {'C8-avg':>8} {'s/epoch':>8}")
    print(f"{'reusebench':12} {up:8.2f} {c8:8.2f} {secs:8.1f}")
    print(f"{'equiadapt':12} {theirs['upright']:8.2f} {theirs['c8_avg']:8.2f} {theirs['seconds_per_epoch']:8.1f}")
    print(f"(equiadapt {theirs['equiadapt']}, torch {theirs['torch']}, {theirs['threads']} threads)")


if __name__ == "__main__":
    main()
