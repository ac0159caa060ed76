"""Reads reusebench's TensorBoard event files with TensorBoard's own reader.

    python3 scripts/check_tensorboard.py RESULTS/tb

Prints one line per run: its path, its scalar tags and how many points each
has; exits 1 when a run has no scalar. The Rust test
`tracking::tensorboard_files_read_back` runs it where the `tensorboard`
package is installed (`pip install tensorboard`) and skips it elsewhere.
"""

import sys
from pathlib import Path

from tensorboard.backend.event_processing.event_accumulator import EventAccumulator


def main(root: str) -> int:
    runs = sorted({p.parent for p in Path(root).rglob("events.out.tfevents.*")})
    if not runs:
        print(f"no event files under {root}")
        return 1
    for run in runs:
        acc = EventAccumulator(str(run), size_guidance={"scalars": 0})
        acc.Reload()
        tags = acc.Tags()["scalars"]
        if not tags:
            print(f"{run}: no scalars")
            return 1
        counts = ", ".join(f"{t}={len(acc.Scalars(t))}" for t in sorted(tags))
        print(f"{run.relative_to(root)}: {counts}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
