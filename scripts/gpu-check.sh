#!/usr/bin/env bash
# GPU checks of a `cuda` build, sized to run in a few minutes on a machine
# with an NVIDIA GPU and its driver.
#
#   scripts/gpu-check.sh pack [BINARY]   # here: strip and compress a cuda build
#                                        # (default target/release/reusebench)
#                                        # into target/gpu-check/ (at most 64 MiB)
#   scripts/gpu-check.sh run [--device cuda:0] [--out DIR] [--smoke]
#                                        # on the GPU machine, from the repository root
#
# `run` uses target/release/reusebench if it is a cuda build, else unpacks
# target/gpu-check/reusebench.xz. It records, in DIR (default
# target/gpu-check/out), one log per step:
#   1. the GPU (nvidia-smi) and `validate` of the quickstart on the device;
#   2. the tests on the device: `REUSEBENCH_TEST_DEVICE=cuda:0 cargo test
#      --release --features cuda` where cargo is installed; where it is not
#      (a bare GPU machine), every smoke grid (experiments/smoke/) run through
#      the binary on the device, each cell required to finish (`--smoke`
#      takes this route even where cargo is installed);
#   3. scripts/compare_pytorch.py --device cuda:0 (train step and inference)
#      against the machine's own PyTorch on the same GPU, eager and
#      torch.compile;
#   4. the quickstart on the device, timed.
# A step that fails is reported and the others still run; the exit status
# is the number of failed steps.
set -uo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
PACK=$ROOT/target/gpu-check
cd "$ROOT"

pack() {
  local bin=${1:-target/release/reusebench}
  [ -x "$bin" ] || { echo "gpu-check: no binary at $bin (build: scripts/setup-cuda.sh, then cargo build --release --features cuda)" >&2; exit 1; }
  mkdir -p "$PACK"
  strip -o "$PACK/reusebench" "$bin"
  xz -9e -T0 -kf "$PACK/reusebench"
  local raw stripped packed
  raw=$(stat -c %s "$bin"); stripped=$(stat -c %s "$PACK/reusebench"); packed=$(stat -c %s "$PACK/reusebench.xz")
  rm -f "$PACK/reusebench"
  echo "gpu-check: $bin $((raw >> 20)) MiB, stripped $((stripped >> 20)) MiB, xz -9e $((packed >> 20)) MiB -> $PACK/reusebench.xz"
  if [ "$packed" -gt $((64 << 20)) ]; then
    echo "gpu-check: over the 64 MiB a GPU machine receives" >&2
    exit 1
  fi
}

run() {
  local device=cuda:0 out=$PACK/out smoke=0
  while [ $# -gt 0 ]; do
    case $1 in
      --smoke) smoke=1; shift ;;
      --device) device=$2; shift 2 ;;
      --out) out=$2; shift 2 ;;
      *) echo "gpu-check: unknown argument $1" >&2; exit 2 ;;
    esac
  done
  mkdir -p "$out"
  local bin=target/release/reusebench
  if ! { [ -x "$bin" ] && "$bin" --help | grep -q 'cuda:N' && "$bin" validate experiments/quickstart.yaml --device "$device" >/dev/null 2>&1; }; then
    [ -f "$PACK/reusebench.xz" ] || { echo "gpu-check: no cuda binary: run \`scripts/gpu-check.sh pack\` on the build machine" >&2; exit 1; }
    bin=$out/reusebench
    python3 -c "import lzma, shutil, sys; shutil.copyfileobj(lzma.open(sys.argv[1]), open(sys.argv[2], 'wb'))" \
      "$PACK/reusebench.xz" "$bin"
    chmod +x "$bin"
  fi
  local failed=0
  step() { # name, command...
    local name=$1; shift
    local start=$SECONDS
    echo "== $name"
    if "$@" >"$out/$name.log" 2>&1; then
      echo "   ok in $((SECONDS - start)) s ($out/$name.log)"
    else
      echo "   FAILED in $((SECONDS - start)) s; last lines of $out/$name.log:"
      tail -n 15 "$out/$name.log" | sed 's/^/   | /'
      failed=$((failed + 1))
    fi
  }
  step gpu bash -c "nvidia-smi -L && '$bin' validate experiments/quickstart.yaml --device '$device'"
  if [ $smoke = 0 ] && command -v cargo >/dev/null; then
    step tests env REUSEBENCH_TEST_DEVICE="$device" cargo test --release --features cuda --workspace
  else
    step smoke-grids smoke_grids "$bin" "$device" "$out"
  fi
  # The machine's own torch where python3 has one (GPU machines cannot
  # install); else the script's venv with torch 2.9.0.
  local torch=()
  python3 -c 'import torch' 2>/dev/null && torch=(--python python3)
  step compare-pytorch-train python3 scripts/compare_pytorch.py "${torch[@]}" --compile --device "$device" \
    --reusebench "$bin" --widths 20 64 --batches 32 128 --rounds 1
  step compare-pytorch-inference python3 scripts/compare_pytorch.py "${torch[@]}" --inference --device "$device" \
    --reusebench "$bin" --widths 20 64 --batches 32 128 --rounds 1
  step quickstart bash -c "sed 's#^results: .*#results: $out/quickstart#' experiments/quickstart.yaml > '$out/quickstart.yaml' \
    && time '$bin' run '$out/quickstart.yaml' --device '$device' --force"
  grep -h 'real' "$out/quickstart.log" | sed 's/^/quickstart wall time: /'
  echo "gpu-check: $failed step(s) failed"
  exit "$failed"
}

# Every smoke grid on the device; each cell must finish (status done).
smoke_grids() {
  local bin=$1 device=$2 out=$3 bad=0
  # What the smoke grids read: generated fixtures, and the converted
  # torchvision-layout weights (as the grids' headers say).
  [ -d datasets/fixtures/fmow ] || "$bin" make-fixture fmow datasets/fixtures/fmow
  [ -d datasets/fixtures/tiny-imagenet-200 ] || "$bin" make-fixture tiny-imagenet datasets/fixtures/tiny-imagenet-200
  mkdir -p "$out/smoke/torchvision"
  "$bin" convert crates/core/tests/fixtures/torchvision/resnet18_w4.pth --arch resnet18 --width 4 \
    -o "$out/smoke/torchvision/resnet18_w4.safetensors"
  for grid in experiments/smoke/*.yaml; do
    local name
    name=$(basename "$grid" .yaml)
    sed "s#^results: .*#results: $out/smoke/$name#" "$grid" >"$out/smoke-$name.yaml"
    if "$bin" run "$out/smoke-$name.yaml" --device "$device" --no-report; then
      echo "smoke $name: ok"
    else
      echo "smoke $name: FAILED"
      bad=1
    fi
    "$bin" status "$out/smoke/$name" || true
  done
  return $bad
}

case ${1:-} in
  pack) shift; pack "$@" ;;
  run) shift; run "$@" ;;
  *) sed -n '2,24p' "$0"; exit 2 ;;
esac
