#!/usr/bin/python3
"""Writes the reference set of the upsampler benchmark (bench/upsampler-quality.ts), by default bench/upsampler-eval/:
scenes of the shapes world with their 64 px render exactly as world.render draws it (hard edges: what the decoder
learnt to draw, so what the upsamplers are fed) and the analytic anti-aliased renders at 256 and 1024 px
(world.paint(attrs, world.coverage(attrs, size, ss=4)), rounded to uint8), plus scene.json with every scene's
attributes (cx, cy, r in 64 px units) and the palette.

Seeds 777000 + i are far from the training streams (config seed 20261127 + step), so no scene was trained on.

  /usr/bin/python3 models/train/upsampler_eval_set.py [--out DIR]
"""
import argparse
import json
import math
import os
import sys

import numpy as np
from PIL import Image

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import world  # noqa: E402

SEED = 777000
COUNTS = {"circle": 12, "square": 10, "triangle": 10, "star": 3, "cross": 3}
# (object, background) pairs cycled through per shape: every colour as object and as background, and the
# low-contrast pairs (yellow/white, orange/red, purple/blue, orange/yellow) where a blurred edge is hardest to place
PAIRS = [("red", "white"), ("yellow", "white"), ("blue", "yellow"), ("purple", "blue"), ("green", "black"),
         ("orange", "red"), ("white", "black"), ("black", "orange"), ("blue", "purple"), ("orange", "yellow"),
         ("red", "green"), ("white", "yellow"), ("purple", "white"), ("yellow", "blue"), ("black", "white"),
         ("red", "orange"), ("green", "purple")]
REFERENCE_SIZES = (256, 1024)


def scenes():
    """The scene attributes, before world.render places the object: sizes alternate, large objects are centred or
    anywhere (never at a corner anchor, where the world may cut up to 3 px off them), small ones at any anchor."""
    out = []
    for shape, n in COUNTS.items():
        for j in range(n):
            colour, bg = PAIRS[(j + 5 * len(out)) % len(PAIRS)]
            size = world.SIZES[j % 2]
            position = ("centre", None)[j // 2 % 2] if size == "large" else (world.POSITION_NAMES + [None])[j // 2 % 6]
            out.append({"shape": shape, "colour": colour, "bg": bg, "size": size, "position": position})
    return out


def reference(attrs, size):
    """uint8 [size, size, 3]: the analytic render; coverage is computed only in the object's bounding box (plus a
    pixel), as it is exactly 0 outside, which keeps a 1024 px render to a few MB of memory."""
    cover = np.zeros((size, size), dtype=np.float32)
    k = size / world.S
    half = 1.1 * attrs["r"]  # the star's tips reach 1.08 r, every other shape less
    x0, y0 = (max(0, math.floor((attrs[c] - half) * k) - 1) for c in ("cx", "cy"))
    x1, y1 = (min(size, math.ceil((attrs[c] + half) * k) + 1) for c in ("cx", "cy"))
    cover[y0:y1, x0:x1] = world.coverage(attrs, size, crop=(x0, y0, x1 - x0, y1 - y0), ss=4)
    return np.round(world.paint(attrs, cover)).astype(np.uint8)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default=os.path.normpath(os.path.join(HERE, "..", "..", "bench", "upsampler-eval")))
    args = ap.parse_args()
    os.makedirs(args.out, exist_ok=True)
    entries = []
    for i, attrs in enumerate(scenes()):
        seed = SEED + i
        low = world.render(attrs, np.random.default_rng(seed))
        name = f"{i:02d}-{attrs['shape']}"
        files = {"64": f"{name}-64.png"}
        Image.fromarray(low).save(os.path.join(args.out, files["64"]), optimize=True)
        for size in REFERENCE_SIZES:
            files[str(size)] = f"{name}-{size}.png"
            Image.fromarray(reference(attrs, size)).save(os.path.join(args.out, files[str(size)]), optimize=True)
        entries.append({"name": name, "seed": seed, **{k: attrs[k] for k in ("shape", "colour", "bg", "size", "position")},
                        "cx": round(attrs["cx"], 4), "cy": round(attrs["cy"], 4), "r": round(attrs["r"], 4), "files": files})
    doc = {
        "description": "Upsampler benchmark scenes (models/train/upsampler_eval_set.py): the 64 px world render "
                       "(world.render, hard edges) and the analytic anti-aliased references at 256 and 1024 px "
                       "(world.coverage ss=4, world.paint, uint8). cx, cy, r in 64 px units, pixel (x, y) covering "
                       "[x, x+1) x [y, y+1).",
        "palette": world.PALETTE,
        "scenes": entries,
    }
    with open(os.path.join(args.out, "scene.json"), "w") as f:
        json.dump(doc, f, indent=1)
        f.write("\n")
    total = sum(os.path.getsize(os.path.join(args.out, n)) for n in os.listdir(args.out))
    print(f"{len(entries)} scenes, {total / 1e6:.2f} MB in {args.out}")


if __name__ == "__main__":
    main()
