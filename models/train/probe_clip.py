#!/usr/bin/python3
"""Quick CLIP diagnostics: aux-head accuracies on the image embedding, for seen and held-out (shape, colour) pairs,
and text->image top-1 over 100 fully captioned pairs (the number the model card reports is measured in TypeScript by
bench/shapes-eval.ts)."""
import os
import sys

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import world  # noqa: E402
from train import clip_pixels, head_accuracy, load_clip  # noqa: E402

clip = load_clip()
rng = np.random.default_rng(5)
for split, held_out in (("seen", False), ("held-out", True)):
    imgs, _, attrs = world.batch(rng, 512, held_out=held_out)
    with torch.no_grad():
        print(f"{split:8} heads %: {head_accuracy(clip, clip.image(clip_pixels(imgs)), attrs)}")
full = []
for i in range(100):
    a = world.sample_attrs(rng)
    if a["position"] is None:
        a["position"] = world.POSITION_NAMES[rng.integers(5)]
    full.append((world.render(a, rng), world.caption(a, rng, full=True)[0]))
with torch.no_grad():
    ie = clip.image(clip_pixels(np.stack([f[0] for f in full])))
    te, _ = clip.text(torch.from_numpy(world.tokenize([f[1] for f in full])))
print("text->image top1 /100", ((te @ ie.t()).argmax(1) == torch.arange(100)).float().mean().item())
