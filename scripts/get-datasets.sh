#!/usr/bin/env bash
# Downloads CIFAR-10 and CIFAR-100 (binary versions) and Tiny ImageNet-200
# into DIR (default: datasets/) with `reusebench data fetch`: official
# sources, SHA-256 checked against datasets/manifest.json, resumable.
# Needs internet; the harness itself never downloads during a run.
# FMoW (~50 GB): `reusebench data fetch fmow --to DIR`, on its own.
set -euo pipefail
repo="$(cd "$(dirname "$0")/.." && pwd)"
dir="$(realpath -m "${1:-$repo/datasets}")"
cd "$repo"
cargo build --release -q
for name in cifar10 cifar100 tiny-imagenet; do
  target/release/reusebench data fetch "$name" --to "$dir"
done
