#!/usr/bin/env bash
# Lays out LLVM 23.1 for burn's `cuda` backend without the download its
# build script would attempt: cubecl-cuda 0.11.3 depends on cubecl-llvm,
# whose build dependency tracel-llvm-bundler fetches an LLVM bundle at build
# time unless its install folder holds the marker `.tracel-llvm-installed`.
# PyPI's static LLVM 23.1.1 wheels (with NVPTX from the extra-targets one)
# have what it links against, and an llvm-config.
#
#   scripts/setup-cuda.sh            # once; idempotent
#   XDG_DATA_HOME=$(scripts/setup-cuda.sh --data-home) cargo build --release --features cuda
#
# CACHE (default target/llvm-wheels) holds the wheels; the bundler's install
# folder ${XDG_DATA_HOME:-$HOME/.local/share}/tracel/tracel-llvm-23.1.0-4 becomes a
# symlink to them. After changing that path, `cargo clean -p cubecl-llvm`.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
CACHE=${CACHE:-$ROOT/target/llvm-wheels}
DATA_HOME=${XDG_DATA_HOME:-$HOME/.local/share}
LINK=$DATA_HOME/tracel/tracel-llvm-23.1.0-4
STATIC=$CACHE/mlc_llvm_static/static

if [ "${1:-}" = "--data-home" ]; then
  echo "$DATA_HOME"
  exit 0
fi

if [ ! -x "$STATIC/bin/llvm-config" ]; then
  echo "setup-cuda: installing LLVM 23.1.1 static wheels into $CACHE"
  python3 -m pip install -q --no-deps --target "$CACHE" \
    mlc-llvm-static==23.1.1.post0 mlc-llvm-static-extra-targets==23.1.1.post0
else
  echo "setup-cuda: wheels already in $CACHE"
fi
# The NVPTX target comes from the second wheel: without it the link fails
# on LLVMInitializeNVPTX*.
if ! ls "$STATIC"/lib/libLLVMNVPTX* >/dev/null 2>&1; then
  echo "setup-cuda: $STATIC/lib has no NVPTX libraries (the extra-targets wheel)" >&2
  exit 1
fi
touch "$STATIC/.tracel-llvm-installed"
mkdir -p "$(dirname "$LINK")"
if [ "$(readlink "$LINK" 2>/dev/null || true)" != "$STATIC" ]; then
  rm -rf "$LINK"
  ln -s "$STATIC" "$LINK"
  echo "setup-cuda: linked $LINK -> $STATIC"
else
  echo "setup-cuda: $LINK already points at $STATIC"
fi
echo "setup-cuda: llvm-config $("$LINK/bin/llvm-config" --version); now: cargo build --release --features cuda"
