#!/usr/bin/env bash
# Keeps the `cuda` feature from rotting: lays out LLVM (scripts/setup-cuda.sh)
# and type-checks the binary and its tests with `--features cuda`. .ci/run
# runs it after clippy, in the same target folder: the dependencies' check
# artifacts are clippy's, so only burn's crates with `cuda`, CubeCL and ours
# are checked anew (4 min 45 s here, the wheels' download included; 34 min
# from an empty folder).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup-cuda.sh
XDG_DATA_HOME=$(scripts/setup-cuda.sh --data-home) \
  cargo check -p reusebench --features cuda --all-targets
