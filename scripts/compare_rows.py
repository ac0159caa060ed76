#!/usr/bin/env python3
"""Compare the metric rows of two results folders value for value.

Used to check that a refactoring changed no number: rows written by an
older reusebench (schema 1: top-level `after_task`/`task`, FMoW groups in
metric names such as `acc_region_Europe`) are mapped to today's form
(coordinates; `acc_by_region` with `region`), training-curve rows that the
older version did not write are counted and set aside, and every other row
must match exactly (same cell, metric, coordinates and value; a cell is
known by its experiment, method, seed and axis values).

    scripts/compare_rows.py OLD_RESULTS NEW_RESULTS
"""
import json
import sys
from pathlib import Path

CURVES = {"curve_loss", "curve_lr", "curve_seconds"}


def normalise(row):
    coords = dict(row.get("coords") or {})
    for k in ("after_task", "task"):
        if row.get(k) is not None:
            coords[k] = row[k]
    metric = row["metric"]
    if metric.startswith("acc_region_"):
        coords["region"] = metric[len("acc_region_"):]
        metric = "acc_by_region"
    elif metric.startswith("acc_year_"):
        coords["year"] = int(metric[len("acc_year_"):])
        metric = "acc_by_year"
    # Cells by what they are, not by id: an id hashes the config, and so
    # the data path, which differs between two folders of generated data.
    # The method axis is left out (its labels changed; the method column
    # names the method), and axis values compare as text ("0" and 0).
    axes = {
        k: v if isinstance(v, str) else json.dumps(v)
        for k, v in row["axes"].items()
        if k != "method"
    }
    cell = (row["experiment"], row["method"], row["seed"], json.dumps(axes, sort_keys=True))
    key = (cell, metric, json.dumps(coords, sort_keys=True))
    return key, row["value"]


def load(folder):
    rows, curves = {}, 0
    for f in sorted(Path(folder, "cells").glob("*/rows.json")):
        for row in json.loads(f.read_text()):
            if row["metric"] in CURVES:
                curves += 1
                continue
            key, value = normalise(row)
            if key in rows:
                sys.exit(f"{f}: duplicate row {key}")
            rows[key] = value
    return rows, curves


def main():
    old, _ = load(sys.argv[1])
    new, curves = load(sys.argv[2])
    missing = sorted(set(old) - set(new))
    extra = sorted(set(new) - set(old))
    differ = sorted(k for k in set(old) & set(new) if old[k] != new[k])
    print(f"{len(old)} rows before, {len(new)} after (+{curves} curve rows)")
    for name, keys in (("missing", missing), ("new", extra), ("different", differ)):
        for k in keys[:10]:
            print(f"  {name}: {k} {old.get(k)} -> {new.get(k)}")
    if missing or extra or differ:
        print(f"{len(missing)} missing, {len(extra)} new, {len(differ)} different")
        sys.exit(1)
    print("every metric value identical, digit for digit")


if __name__ == "__main__":
    main()
