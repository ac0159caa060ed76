#!/usr/bin/env python3
"""Regenerate the torchvision ViT parity fixtures in
crates/core/tests/fixtures/torchvision/ (vit_*).

Needs torch, torchvision and safetensors (any venv that has them, e.g. the
one scripts/compare_equiadapt.py makes):

    target/equiadapt-venv/bin/python scripts/make_vit_fixtures.py

The model is torchvision's own `VisionTransformer`, small: 32 px images,
patch 8, dim 32, depth 2, 4 heads, MLP 64, 10 classes. Its weights are
torchvision's initialisation with a fixed seed, then every LayerNorm, bias,
the class token and the head redrawn at random so that a mapping error in
any of them shows. Written:

- vit_p8_d32.safetensors: its state_dict, torchvision's names;
- vit_expected.safetensors: a fixed input at 32 px, the class-token features
  (after the final LayerNorm) and logits in eval mode; the same at 48 px
  after torchvision's `interpolate_embeddings` (bicubic) resized the
  position embeddings;
- vit_b_16_layout.json: every (name, shape) of torchvision's `vit_b_16`
  state_dict, so that the Rust tests check the full-size layout without
  Python. The Rust tests never run Python.
"""

import json
import os

import torch
from safetensors.torch import save_file
from torchvision.models import vit_b_16
from torchvision.models.vision_transformer import VisionTransformer, interpolate_embeddings

OUT = os.path.join(os.path.dirname(__file__), "..", "crates", "core", "tests", "fixtures", "torchvision")
SHAPE = dict(patch_size=8, num_layers=2, num_heads=4, hidden_dim=32, mlp_dim=64, num_classes=10)


def model(image_size):
    return VisionTransformer(image_size=image_size, **SHAPE).eval()


def features(m, x):
    # VisionTransformer.forward less the head: the class token after encoder.ln.
    x = m._process_input(x)
    x = torch.cat([m.class_token.expand(x.shape[0], -1, -1), x], dim=1)
    return m.encoder(x)[:, 0]


def main():
    os.makedirs(OUT, exist_ok=True)
    torch.manual_seed(0)
    small = model(32)
    with torch.no_grad():
        for name, p in small.named_parameters():
            if "ln" in name or name.endswith("bias") or name == "class_token" or name.startswith("heads"):
                p.copy_(torch.randn_like(p) * (0.5 if name.endswith("weight") else 0.1)
                        + (1.0 if "ln" in name and name.endswith("weight") else 0.0))
    state = {k: v.contiguous() for k, v in small.state_dict().items()}
    save_file(state, os.path.join(OUT, "vit_p8_d32.safetensors"))

    expected = {}
    with torch.no_grad():
        x32 = torch.randn(2, 3, 32, 32)
        expected["input_32"] = x32
        expected["features_32"] = features(small, x32)
        expected["logits_32"] = small(x32)
        resized = interpolate_embeddings(48, SHAPE["patch_size"], small.state_dict(), "bicubic")
        big = model(48)
        big.load_state_dict(resized)
        x48 = torch.randn(2, 3, 48, 48)
        expected["input_48"] = x48
        expected["pos_embedding_48"] = resized["encoder.pos_embedding"]
        expected["logits_48"] = big(x48)
    save_file({k: v.contiguous() for k, v in expected.items()}, os.path.join(OUT, "vit_expected.safetensors"))

    layout = [[k, list(v.shape)] for k, v in vit_b_16().state_dict().items()]
    with open(os.path.join(OUT, "vit_b_16_layout.json"), "w") as f:
        f.write("[\n" + ",\n".join(json.dumps(e) for e in layout) + "\n]\n")
    for name in ("vit_p8_d32.safetensors", "vit_expected.safetensors"):
        os.chmod(os.path.join(OUT, name), 0o644)  # save_file writes them owner-only
    print(f"wrote {len(state)} tensors, expected outputs, and {len(layout)} vit_b_16 keys to {OUT}")


if __name__ == "__main__":
    main()
