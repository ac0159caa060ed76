#!/usr/bin/env python3
"""Compares two results folders cell by cell: every cell's rows.json, less
the timing metrics (crates/results/src/names.rs `TIMING`: they differ
between two runs of the same cell), must be equal to the last bit.

    scripts/compare_rows.py RESULTS_A RESULTS_B

Prints each cell that differs (or exists on one side only) and a count;
exit status 0 when every cell matches, 1 otherwise."""
import json
import re
import sys
from pathlib import Path

NAMES = Path(__file__).resolve().parent.parent / "crates/results/src/names.rs"


def timing_metrics():
    text = NAMES.read_text()
    consts = dict(re.findall(r'pub const (\w+): &str = "([^"]+)";', text))
    block = re.search(r"pub const TIMING: &\[&str\] = &\[(.*?)\];", text, re.S).group(1)
    return {consts[c] for c in re.findall(r"\w+", block)}


def cells(root):
    return {p.relative_to(root).as_posix(): p for p in Path(root).rglob("rows.json")}


def rows(path, timing):
    data = json.loads(path.read_text())
    kept = [r for r in data if r.get("metric") not in timing]
    return json.dumps(kept, sort_keys=True)


def main():
    a, b = sys.argv[1], sys.argv[2]
    timing = timing_metrics()
    ca, cb = cells(a), cells(b)
    bad = 0
    for key in sorted(set(ca) | set(cb)):
        if key not in ca or key not in cb:
            print(f"only in {'B' if key not in ca else 'A'}: {key}")
            bad += 1
        elif rows(ca[key], timing) != rows(cb[key], timing):
            print(f"differs: {key}")
            bad += 1
    total = len(set(ca) | set(cb))
    print(f"{total} cells compared (timing metrics left out: {len(timing)}); "
          + ("identical" if bad == 0 else f"{bad} differ"))
    sys.exit(1 if bad else 0)


if __name__ == "__main__":
    main()
