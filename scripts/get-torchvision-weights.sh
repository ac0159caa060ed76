#!/usr/bin/env bash
# Downloads torchvision's ImageNet-1k ResNet-18 and ResNet-50 weights into
# DIR (default: weights/). Needs internet; the harness itself never downloads.
# These are the files torchvision's `ResNet18_Weights.IMAGENET1K_V1` and
# `ResNet50_Weights.IMAGENET1K_V1` / `IMAGENET1K_V2` point at.
set -euo pipefail
dir="${1:-weights}"
mkdir -p "$dir"
cd "$dir"
base="https://download.pytorch.org/models"
for f in resnet18-f37072fd.pth resnet50-0676ba61.pth resnet50-11ad3fa6.pth; do
  [ -f "$f" ] || curl -fL -o "$f" "$base/$f"
done
ls -l "$PWD"
