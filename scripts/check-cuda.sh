#!/usr/bin/env bash
# Keeps the `cuda` feature from rotting: lays out LLVM (scripts/setup-cuda.sh)
# and type-checks the binary and its tests with `--features cuda`, in a
# target folder of its own (a check shares nothing with the test build).
# Not part of .ci/run: cold, it took 34 min here on 2 cores (niced, beside
# two real-data runs), which with the tests would pass CI's 45-minute
# budget. Run it before submitting anything that touches backends.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup-cuda.sh
XDG_DATA_HOME=$(scripts/setup-cuda.sh --data-home) CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-target/cuda-check} \
  cargo check -p reusebench --features cuda --all-targets
