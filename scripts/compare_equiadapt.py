#!/usr/bin/env python3
"""Side by side with equiadapt: its canonicalizer in front of the same
predictor, on the same data, against a reusebench `canon-prior` cell.

The predictor is the one a reusebench canonicalize grid pretrained (the
ResNet-18, CIFAR variant, its backbone and head safetensors). This script
loads it into an equivalent PyTorch module and puts equiadapt's canonicalizer
in front: the network the cell used (`canonicalizer.network`), its
`ESCNNEquivariantNetwork` for `escnn` (e2cnn's steerable `R2Conv` layers on
the regular representation of C_N: the E(2)-equivariant network of the
paper) or its rotated-filter `CustomEquivariantNetwork` for `custom`
(`--network` picks another), wrapped in `GroupEquivariantImageCanonicalization`
(beta 1). Everything else comes from the grid cell's config (the tuned
learning rate, lr_scale, prior weight and prior-only epochs, canonicalizer
channels, layers, kernel and crop, epochs, batch size): the canonicalizer
first trains on the prior alone, then both train as the cell does (SGD,
momentum 0.9, weight decay 5e-4, cosine; loss = CE + prior_weight x
equiadapt's prior loss; random crop with padding 4 and flip). It evaluates
on the CIFAR-10 test split turned by every multiple of 45 degrees (edge
padding, kornia rotation, centre crop, as equiadapt canonicalizes) and
prints upright and C8-averaged accuracy, the share of C_N-turned test images
mapped upright, and seconds per epoch beside the cell's rows.

Usage (from the repository root, after the grid has run):

    scripts/compare_equiadapt.py                      # seed 0, C8, the cell's network
    scripts/compare_equiadapt.py --seed 1 --group-order 4 --network custom

It creates target/equiadapt-venv the first time and installs equiadapt
0.1.2 (which brings torch, kornia and omegaconf) and e2cnn from PyPI.
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
    probe = subprocess.run([py, "-c", "import equiadapt, e2cnn, kornia, omegaconf, safetensors"], capture_output=True)
    if probe.returncode != 0:
        print(f"installing equiadapt==0.1.2 into {VENV} ...", file=sys.stderr)
        # torch from PyPI; e2cnn for equiadapt's ESCNNEquivariantNetwork (escnn itself
        # needs py3nj, which needs a Fortran compiler; equiadapt 0.1.2 imports e2cnn).
        subprocess.run([py, "-m", "pip", "install", "-q", "equiadapt==0.1.2", "e2cnn", "safetensors", "numpy"], check=True)
    return py


def reusebench_side(results, seed, order):
    """The grid's final (test-scored) canon-prior cell with `seed` at C`order`:
    its config and its upright and C8-averaged accuracy, mapped-upright share
    and mean seconds per joint and per prior-only epoch."""
    cells = os.path.join(results, "cells")
    # The cells of the grid as last run (grid.json): a results folder keeps
    # the cells of earlier setups beside them.
    current = json.load(open(os.path.join(results, "grid.json")))["cells"]
    for cell in current:
        path = os.path.join(cells, cell, "rows.json")
        if not os.path.exists(path):
            continue
        rows = json.load(open(path))
        config = json.load(open(os.path.join(cells, cell, "config.json")))["config"]
        if (not rows or rows[0]["method"] != "canon-prior" or rows[0]["seed"] != seed
                or config.get("group_order") != order
                or not any(r.get("split") == "test" for r in rows)):
            continue
        get = lambda m: next(r["value"] for r in rows if r["metric"] == m and not r.get("coords"))
        secs = lambda stage: [r["value"] for r in rows
                              if r["metric"] == "curve_seconds" and r["coords"].get("stage") == stage]
        mean = lambda v: sum(v) / max(len(v), 1)
        return config, {
            "upright": get("acc_upright"), "c8_avg": get("acc_c8_avg"),
            "mapped_upright": get("upright_fraction"),
            "seconds_per_epoch": mean(secs("train")), "prior_seconds_per_epoch": mean(secs("prior")),
        }
    raise SystemExit(f"no test-scored canon-prior cell with seed {seed} at C{order} under {cells}: run the grid first")


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--results", default=os.path.join(ROOT, "results", "canonicalize-cifar10-subset-cpu"))
    p.add_argument("--cifar", default=os.path.join(ROOT, "..", "shared", "datasets", "cifar-10-subset", "cifar-10-batches-bin"))
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--group-order", type=int, default=8)
    p.add_argument("--network", choices=["escnn", "custom"], default=None,
                   help="equiadapt's canonicalizer network: `escnn` (e2cnn steerable R2Conv, regular "
                        "representation of C_N) or `custom` (its rotated-filter group convolution); "
                        "default: the cell's canonicalizer.network")
    p.add_argument("--threads", type=int, default=os.cpu_count())
    p.add_argument("--max-steps", type=int, default=0, help="cap every epoch (a quick check of the script)")
    args = p.parse_args()

    config, ours = reusebench_side(args.results, args.seed, args.group_order)
    canon = config["canonicalizer"]
    # The cell's network unless told otherwise (grids before `network` existed used custom).
    ours_network = canon.get("network", "custom")
    args.network = args.network or ours_network
    backbone = config["backbone"]["checkpoint"].replace("{results}", args.results)
    side_config = {
        "seed": args.seed, "threads": args.threads, "cifar": args.cifar, "network": args.network,
        "group_order": args.group_order, "epochs": config["epochs"], "batch_size": config["batch_size"],
        "lr": config["optimizer"]["lr"], "lr_scale": canon["lr_scale"],
        "prior_weight": config["method"].get("prior_weight", 100.0),
        "prior_epochs": config["method"].get("prior_epochs", 20),
        "channels": canon["channels"], "layers": canon["layers"], "kernel": canon["kernel"],
        "crop_ratio": canon["crop_ratio"], "width": config["backbone"]["width"],
        "backbone": backbone, "head": config["head"].replace("{results}", args.results),
        "max_steps": args.max_steps,
    }
    side = os.path.join(ROOT, "scripts", "equiadapt_side.py")
    out = subprocess.run([venv_python(), side, json.dumps(side_config)], capture_output=True, text=True)
    if out.returncode != 0:
        raise SystemExit(f"the equiadapt side failed:\n{out.stdout}{out.stderr}")
    theirs = json.loads(out.stdout.strip().splitlines()[-1])
    print(f"C{args.group_order} canon-prior, seed {args.seed}, {config['epochs']} epochs after "
          f"{side_config['prior_epochs']} prior-only epochs, lr {side_config['lr']:.4g} "
          f"(the grid's tuned value), CIFAR-10 subset; networks: reusebench {ours_network}, "
          f"equiadapt {args.network}")
    print(f"{'':12} {'upright':>8} {'C8-avg':>8} {'mapped':>8} {'s/epoch':>8} {'s/prior':>8}")
    for name, r in (("reusebench", ours), ("equiadapt", theirs)):
        print(f"{name:12} {r['upright']:8.2f} {r['c8_avg']:8.2f} {r['mapped_upright']:8.2f} "
              f"{r['seconds_per_epoch']:8.1f} {r['prior_seconds_per_epoch']:8.1f}")
    print(f"(equiadapt {theirs['equiadapt']}, torch {theirs['torch']}, {theirs['threads']} threads)")


if __name__ == "__main__":
    main()
