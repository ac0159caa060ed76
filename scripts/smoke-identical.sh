#!/usr/bin/env bash
# Are the smoke grids' results byte-identical to those of another commit?
# For a change that must not change behaviour (a refactor, a speed-up).
#
#   scripts/smoke-identical.sh [BASE_REV]      # default: HEAD
#
# Builds BASE_REV (in a git worktree, sharing this checkout's target folder
# so that only the workspace's own crates build again) and the working tree,
# runs every grid of experiments/smoke/ with each binary from a folder of
# its own (same relative paths, so the same cell ids), and compares every
# cell's rows with scripts/compare_rows.py: equal to the last bit, timing
# metrics left out (they differ between two runs of one binary too). Exit
# status 0 when all are identical, 1 otherwise (the differing cells listed).
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$PWD
base_rev=${1:-HEAD}
work=$(mktemp -d /tmp/smoke-identical.XXXXXX)
target=${CARGO_TARGET_DIR:-$repo/target}
export CARGO_TARGET_DIR=$target
# The base's sources inside the target folder (ignored by git); its
# workspace crates build anew each time, the dependencies are shared.
base_src=$target/smoke-identical-base
trap 'git -C "$repo" worktree remove --force "$base_src" >/dev/null 2>&1 || true' EXIT

git worktree remove --force "$base_src" >/dev/null 2>&1 || true
git worktree add --detach "$base_src" "$base_rev" >/dev/null
# Built as the tests build it (dev-dependencies' features unified), so the
# dependencies the test suite compiled are reused.
# Cargo names a workspace crate's artifacts by its path relative to the
# workspace, so both builds write the same file names, and one can take
# the other's artifacts as fresh (seen: the working tree compiled against
# the base's reusebench-results). Each build starts with the workspace's
# own crates cleaned; the dependencies stay.
clean_workspace_crates() {
  local names
  names=$(cargo metadata -q --no-deps --format-version 1 |
    python3 -c 'import json,sys; print(" ".join(p["name"] for p in json.load(sys.stdin)["packages"]))')
  for name in $names; do cargo clean -q -p "$name" 2>/dev/null || true; done
}
echo "building $base_rev ..."
(cd "$base_src" && clean_workspace_crates && cargo test -q --workspace --no-run 2>/dev/null)
cp "$target/debug/reusebench" "$work/reusebench-base"
echo "building the working tree ..."
clean_workspace_crates
cargo test -q --workspace --no-run 2>/dev/null
cp "$target/debug/reusebench" "$work/reusebench-new"

run_all() {
  local side=$1 src=$2 dir=$work/$1
  mkdir -p "$dir/datasets" "$dir/crates/core/tests"
  ln -s "$src/experiments" "$dir/experiments"
  ln -s "$src/crates/core/tests/fixtures" "$dir/crates/core/tests/fixtures"
  (
    cd "$dir"
    local bin=$work/reusebench-$side
    "$bin" make-fixture fmow datasets/fixtures/fmow >/dev/null
    "$bin" make-fixture tiny-imagenet datasets/fixtures/tiny-imagenet-200 >/dev/null
    for grid in experiments/smoke/*.yaml; do
      # A grid that fails a cell still writes the others: compared as well.
      "$bin" run "$grid" >"$work/$side-$(basename "$grid" .yaml).log" 2>&1 || true
    done
  )
}
echo "running the smoke grids with both ..."
run_all base "$base_src"
run_all new "$repo"

status=0
python3 scripts/compare_rows.py "$work/base/results" "$work/new/results" || status=1
[ $status = 0 ] && rm -rf "$work" || echo "kept for inspection: $work"
exit $status
