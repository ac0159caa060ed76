#!/usr/bin/env python3
"""Side by side: the energy and carbon of one retraining cell, measured by
CodeCarbon and by reusebench's own tracker.

One `resque` cell (salt-and-pepper at level 5: RESQUE, then retraining to the
target) runs as a `reusebench run` subprocess. CodeCarbon's
OfflineEmissionsTracker measures that subprocess from this script
(`tracking_mode="process"` counts children's CPU time); reusebench meters
the same cell itself (the experiment's `energy:` key: rows
`cell_energy_joules`, `cell_carbon_grams`) and its retraining alone (`cost:`:
`energy_joules`). Both use the same source: RAPL where readable, otherwise
a CPU power model at the same TDP (`--tdp`, passed to CodeCarbon as
`force_cpu_power`). The carbon intensity is CodeCarbon's for `--country`;
reusebench is given the same number, read back from CodeCarbon's result.

Setup (a venv with CodeCarbon from PyPI; nothing else is needed):

    python3 -m venv .venv-codecarbon && .venv-codecarbon/bin/pip install codecarbon
    .venv-codecarbon/bin/python scripts/compare_codecarbon.py --reusebench target/release/reusebench

The pretraining cell runs first and is not measured. Uses the CIFAR-10
subset in ../shared/datasets when present, generated data otherwise.
"""

import argparse
import json
import logging
import pathlib
import subprocess
import sys
import tempfile
import time

REPO = pathlib.Path(__file__).resolve().parent.parent
CIFAR = REPO.parent / "shared/datasets/cifar-10-subset/cifar-10-batches-bin"


def grid(results: pathlib.Path, tdp: float, intensity: float, real: bool, pretrain: bool) -> str:
    if real:
        data = f"{{ name: cifar10, root: {CIFAR}, train_per_class: 300 }}"
        # An unreachable target: retraining runs its whole cap, a run of
        # known length to measure (3 epochs here, 6 on generated data).
        width, epochs, target, cap = 20, 8, "target_acc: 99", 3
    else:
        data = "{ name: synthetic, classes: 4, train_per_class: 64, test_per_class: 16 }"
        width, epochs, target, cap = 8, 4, "target_acc: 99", 6
    head = f"""name: compare-codecarbon
results: {results}
experiments:
"""
    pre = f"""  - name: pretrain
    protocol: pretrain
    base:
      seed: 0
      data: {data}
      classes: [0, 1, 2, 3]
      backbone: {{ width: {width} }}
      epochs: {epochs}
      optimizer: {{ lr: 0.05, schedule: cosine }}
      output: "{{results}}/pretrained/backbone.safetensors"
      head_output: "{{results}}/pretrained/head.safetensors"
"""
    retrain = f"""  - name: retrain
    protocol: resque
    energy: {{ energy: auto, tdp_watts: {tdp}, grid_intensity: {intensity} }}
    base:
      seed: 0
      data: {data}
      classes: [0, 1, 2, 3]
      backbone: {{ width: {width}, checkpoint: "{{results}}/pretrained/backbone.safetensors" }}
      head: "{{results}}/pretrained/head.safetensors"
      shift: {{ family: salt-pepper, level: 5 }}
      retrain: {{ {target}, max_epochs: {cap}, optimizer: {{ lr: 0.01 }} }}
      cost: {{ energy: auto, tdp_watts: {tdp}, grid_intensity: {intensity} }}
"""
    return head + (pre if pretrain else "") + retrain


def run(binary: str, grid_file: pathlib.Path, *extra: str) -> None:
    subprocess.run([binary, "run", str(grid_file), "--no-report", *extra], check=True,
                   stdout=subprocess.DEVNULL)


def cell_rows(results: pathlib.Path) -> dict:
    [cell] = [d for d in (results / "cells").iterdir() if d.name.startswith("retrain-")]
    rows = json.loads((cell / "rows.json").read_text())
    return {r["metric"]: r["value"] for r in rows if not r.get("coords")}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--reusebench", default=str(REPO / "target/release/reusebench"))
    ap.add_argument("--tdp", type=float, default=85.0, help="CPU TDP in watts, for both")
    ap.add_argument("--country", default="USA", help="ISO code for CodeCarbon's grid intensity")
    ap.add_argument("--mode", default="process", choices=["process", "machine"],
                    help="CodeCarbon's tracking mode")
    ap.add_argument("--generated", action="store_true",
                    help="generated data even where the CIFAR-10 subset is present (quick check)")
    args = ap.parse_args()
    from codecarbon import OfflineEmissionsTracker

    logging.getLogger("codecarbon").setLevel(logging.ERROR)
    real = CIFAR.is_dir() and not args.generated
    with tempfile.TemporaryDirectory() as tmp:
        tmp = pathlib.Path(tmp)
        results = tmp / "results"
        # Pretraining first, unmeasured; then a grid of the retrain cell
        # alone (it reads the pretrained files), run under both trackers.
        # reusebench gets a placeholder intensity of 1 g/kWh: its carbon is
        # recomputed below at CodeCarbon's.
        first = tmp / "pretrain.yaml"
        first.write_text(grid(results, args.tdp, 1.0, real, pretrain=True))
        run(args.reusebench, first)
        grid_file = tmp / "retrain.yaml"
        grid_file.write_text(grid(results, args.tdp, 1.0, real, pretrain=False))

        tracker = OfflineEmissionsTracker(
            country_iso_code=args.country,
            tracking_mode=args.mode,
            force_cpu_power=args.tdp,
            measure_power_secs=1,
            save_to_file=False,
            log_level="error",
        )
        tracker.start()
        started = time.time()
        run(args.reusebench, grid_file, "--force")
        wall = time.time() - started
        tracker.stop()
        cc = tracker.final_emissions_data
        cc_joules_cpu = cc.cpu_energy * 3.6e6
        cc_joules = cc.energy_consumed * 3.6e6
        intensity = cc.emissions / cc.energy_consumed * 1000.0 if cc.energy_consumed else 0.0

        rb = cell_rows(results)
        rb_cell = rb["cell_energy_joules"]
        rb_retrain = rb["energy_joules"]
        source = "RAPL" if rb["cell_energy_from_rapl"] == 1.0 else f"CPU model ({args.tdp:g} W TDP)"
        rb_carbon = rb_cell / 3.6e6 * intensity

    print(f"data: {'CIFAR-10 subset' if real else 'generated'}; reusebench source: {source}; "
          f"CodeCarbon {args.mode} mode, CPU power forced to {args.tdp:g} W, country {args.country} "
          f"({intensity:.0f} gCO2/kWh); wall time of the measured run {wall:.1f} s "
          "(the retrain cell: RESQUE, retraining, and the process's start-up and data loading)")
    print()
    print("| quantity | CodeCarbon | reusebench | ratio reusebench / CodeCarbon |")
    print("|---|---|---|---|")
    print(f"| CPU energy (J) | {cc_joules_cpu:.1f} | {rb_cell:.1f} (whole cell) | "
          f"{rb_cell / cc_joules_cpu if cc_joules_cpu else float('nan'):.2f} |")
    print(f"| total energy (J, CodeCarbon adds RAM) | {cc_joules:.1f} | {rb_cell:.1f} | "
          f"{rb_cell / cc_joules if cc_joules else float('nan'):.2f} |")
    print(f"| carbon (g) | {cc.emissions * 1000:.4f} | {rb_carbon:.4f} | "
          f"{rb_carbon / (cc.emissions * 1000) if cc.emissions else float('nan'):.2f} |")
    print(f"| retraining alone (J) | – | {rb_retrain:.1f} | – |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
