#!/usr/bin/env bash
# Downloads the official CIFAR-10 and CIFAR-100 binary versions and Tiny
# ImageNet-200 into DIR
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
f=tiny-imagenet-200.zip
[ -f "$f" ] || curl -fL -o "$f" "http://cs231n.stanford.edu/$f"
[ -d tiny-imagenet-200 ] || unzip -q "$f"
echo "CIFAR-10:  $PWD/cifar-10-batches-bin"
echo "CIFAR-100: $PWD/cifar-100-binary"
echo "Tiny ImageNet-200: $PWD/tiny-imagenet-200"
echo "FMoW (WILDS fmow_v1.1, ~50 GB) is not fetched here; see README, Getting the real datasets."
