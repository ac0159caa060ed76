#!/usr/bin/env bash
# Downloads the official CIFAR-10 and CIFAR-100 binary versions into DIR
# (default: datasets/). Needs internet; the harness itself never downloads.
set -euo pipefail
dir="${1:-datasets}"
mkdir -p "$dir"
cd "$dir"
base="https://www.cs.toronto.edu/~kriz"
for f in cifar-10-binary.tar.gz cifar-100-binary.tar.gz; do
  [ -f "$f" ] || curl -fL -o "$f" "$base/$f"
  tar xzf "$f"
done
echo "CIFAR-10:  $PWD/cifar-10-batches-bin"
echo "CIFAR-100: $PWD/cifar-100-binary"
