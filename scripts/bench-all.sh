#!/usr/bin/env bash
# The performance table of docs/performance.md in one command, on this
# machine: the train step and inference against PyTorch 2.9 eager (ResNet-18
# CIFAR variant at four shapes, vit-tiny at batch 32), continual cells (SGD
# and ER) against Avalanche 0.6.0, and the quickstart's wall time and peak
# RSS. Prints markdown with the CPU model above it and keeps every piece's
# full output under target/bench-all/.
#
#   scripts/bench-all.sh                                  # builds target/release/reusebench if absent
#   REUSEBENCH=target/debug/reusebench scripts/bench-all.sh
#   ROUNDS=1 scripts/bench-all.sh                          # quicker, noisier
#
# The Python peers (PyTorch in target/bench-venv, Avalanche in
# target/avalanche-venv) are installed from PyPI on first use. Takes 11-12
# minutes at ROUNDS=2 on 2 cores of an AMD EPYC (2026-12-07); more at the
# default 3 rounds, and the first time, for the installs. Run it on an
# otherwise idle machine: every figure is a ratio
# of two programs timed in alternation, but both sides share the cores.
set -euo pipefail
cd "$(dirname "$0")/.."

BIN=${REUSEBENCH:-target/release/reusebench}
ROUNDS=${ROUNDS:-3}
OUT=target/bench-all
mkdir -p "$OUT"
if [ ! -x "$BIN" ]; then
    echo "building $BIN ..." >&2
    cargo build --release --bin reusebench
fi
cpu=$(lscpu | sed -n 's/^Model name: *//p' | head -n 1)
threads=$(nproc)

step() { echo "[$(date +%H:%M:%S)] $*" >&2; }

step "train step against PyTorch (ResNet-18, 4 shapes)"
python3 scripts/compare_pytorch.py --widths 20 64 --batches 32 128 --rounds "$ROUNDS" \
    --reusebench "$BIN" > "$OUT/train.txt"
step "inference against PyTorch (ResNet-18, 4 shapes)"
python3 scripts/compare_pytorch.py --inference --widths 20 64 --batches 32 128 --rounds "$ROUNDS" \
    --reusebench "$BIN" > "$OUT/inference.txt"
step "vit-tiny train step and inference against PyTorch"
python3 scripts/compare_pytorch.py --arch vit-tiny --batches 32 --rounds "$ROUNDS" \
    --reusebench "$BIN" > "$OUT/vit-train.txt"
python3 scripts/compare_pytorch.py --arch vit-tiny --inference --batches 32 --rounds "$ROUNDS" \
    --reusebench "$BIN" > "$OUT/vit-inference.txt"
# `er` fills its buffer during training (Mammoth's reservoir), so it also
# replays during the first task, where Avalanche's Replay (filled after each
# task) has nothing to replay yet: 6 batch passes per 3 of SGD against 5.
# `er-balanced` fills it as Avalanche does: the like-for-like time.
step "continual cells against Avalanche (SGD, ER, ER with Avalanche's buffer rule)"
python3 scripts/compare_avalanche.py --methods sgd er er-balanced --seeds 0 --reusebench "$BIN" \
    > "$OUT/avalanche.txt"

# The continual cells' `phase_seconds` rows (every cell records its time
# per phase), summed over the cells, as a table with the share of
# everything but training.
phase_table() {
    python3 - "$1" <<'PY'
import json, pathlib, sys
phases, cells = {}, 0
for path in sorted(pathlib.Path(sys.argv[1]).glob("cells/*/rows.json")):
    rows = [r for r in json.loads(path.read_text())
            if r.get("protocol") == "continual" and r.get("metric") == "phase_seconds"]
    cells += bool(rows)
    for r in rows:
        phase = r["coords"]["phase"]
        phases[phase] = phases.get(phase, 0.0) + r["value"]
total = sum(phases.values())
if not cells or total == 0:
    print("(no phase times: see the quickstart log)")
    sys.exit()
print(f"| phase | seconds ({cells} cells) | share |")
print("|---|---|---|")
for name, sec in phases.items():
    print(f"| {name} | {sec:.2f} | {100 * sec / total:.1f} % |")
rest = total - phases.get("train", 0.0)
print(f"| everything but train | {rest:.2f} | {100 * rest / total:.1f} % |")
PY
}

step "quickstart: wall time and peak RSS"
quick=$(mktemp -d)
sed "s|^results: .*|results: $quick/results|" experiments/quickstart.yaml > "$quick/grid.yaml"
/usr/bin/time -f "%e %M" -o "$OUT/quickstart.time" "$BIN" run "$quick/grid.yaml" --no-report \
    > "$OUT/quickstart.log" 2>&1
read -r wall rss_kb < "$OUT/quickstart.time"
phase_table "$quick/results" > "$OUT/phases.md"
rm -rf "$quick"

# The markdown tables of each script's output (lines starting with `|`),
# a blank line between two tables.
tables() {
    grep -q '^|' "$1" || { echo "(no table: see $1)"; return; }
    awk '/^\|/ { print; table = 1; next } table { print ""; table = 0 }' "$1"
}

cat <<EOF
## Performance on ${cpu} (${threads} threads), $(date +%Y-%m-%d), $("$BIN" --version)

Train step, ResNet-18 (CIFAR variant), against PyTorch eager (median of $ROUNDS alternating rounds):

$(tables "$OUT/train.txt")

Inference (evaluation mode, no gradient graph):

$(tables "$OUT/inference.txt")

vit-tiny, train step and inference:

$(tables "$OUT/vit-train.txt")

$(tables "$OUT/vit-inference.txt")

Continual cells against Avalanche 0.6.0 (CIFAR-10 subset, 3 tasks of 2 classes, seed 0; \`er\` also replays during the first task, \`er-balanced\` fills its buffer after each task as Avalanche's Replay does):

$(tables "$OUT/avalanche.txt")

Quickstart (\`experiments/quickstart.yaml\`, generated data): ${wall} s wall, peak RSS $((rss_kb / 1024)) MB.

Where the quickstart's continual cells spend their time (their \`phase_seconds\` rows, summed; the target is non-training ≤ 10 %):

$(cat "$OUT/phases.md")
EOF
