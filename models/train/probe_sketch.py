#!/usr/bin/python3
"""How well the sketcher alone draws the scene from the CLIP image embedding: it renders 200 fresh scenes (seen
(shape, colour) pairs and held-out ones), draws them from their embeddings, and reads the drawing with the same
rules as bench/shapes-checker.ts (border colour, object = pixels far from it, shape = best IoU of the silhouette's
bounding box resampled to 24x24 against rendered templates); beside it, how often the sketcher's shape head (the
sprite it draws most) is the scene's shape.

  /usr/bin/python3 models/train/probe_sketch.py [sketch|decoder]   (default: sketch, the sketch stage's weights)
"""
import sys

import numpy as np
import torch
import torch.nn.functional as F

import train
import world

GRID, FAR = 24, 60
PAL = np.array([world.PALETTE[c] for c in world.COLOURS], dtype=np.float32)


def crop_to_grid(mask):
    ys, xs = np.nonzero(mask)
    if len(xs) == 0:
        return np.zeros((GRID, GRID), dtype=bool)
    x0, y0, w, h = xs.min(), ys.min(), xs.max() - xs.min() + 1, ys.max() - ys.min() + 1
    gy = y0 + (np.arange(GRID) * h // GRID)
    gx = x0 + (np.arange(GRID) * w // GRID)
    return mask[np.ix_(gy, gx)]


TEMPLATES = [(s, crop_to_grid(m)) for s, masks in world.templates().items() for m in masks]


def nearest(pixels):
    return ((pixels[:, None, :] - PAL[None]) ** 2).sum(-1).argmin(1)


def check(img):
    """img uint8 [64,64,3] -> (bg, colour, shape) names, None where no object was found."""
    border = np.concatenate([img[:2].reshape(-1, 3), img[-2:].reshape(-1, 3), img[:, :2].reshape(-1, 3), img[:, -2:].reshape(-1, 3)])
    bg = np.bincount(nearest(border.astype(np.float32)), minlength=len(PAL)).argmax()
    mask = ((img.astype(np.float32) - PAL[bg]) ** 2).sum(-1) > FAR * FAR
    if mask.sum() < 12:
        return world.COLOURS[bg], None, None
    colour = np.bincount(nearest(img[mask].astype(np.float32)), minlength=len(PAL)).argmax()
    grid = crop_to_grid(mask)
    ious = [(grid & t).sum() / max(1, (grid | t).sum()) for _, t in TEMPLATES]
    return world.COLOURS[bg], world.COLOURS[colour], TEMPLATES[int(np.argmax(ious))][0]


def draw(sketcher, emb):
    """The sketcher's 64 px drawings of embeddings [n,D] as uint8 [n,64,64,3], the checker's input."""
    with torch.no_grad():
        drawn = F.pixel_shuffle(sketcher(emb), 2)
    return ((drawn.clamp(-1, 1) + 1) * 127.5).round().byte().permute(0, 2, 3, 1).numpy()


def main():
    which = sys.argv[1] if len(sys.argv) > 1 else "sketch"
    clip = train.load_clip()
    if which == "sketch":
        sketcher = train.make_sketcher()
        sketcher.load_state_dict(train.load_state("sketch")["model"])
    else:
        sketcher = train.load_decoder().sketcher
    sketcher.eval()
    for split, held in [("seen", False), ("held-out", True)]:
        rng = np.random.default_rng(777)
        imgs, _, attrs = world.batch(rng, 100, held_out=held)
        with torch.no_grad():
            emb = clip.image(train.clip_pixels(imgs))
            read = sketcher.read(emb)["shape"].argmax(dim=1).numpy()
        out = draw(sketcher, emb)
        hits = {"bg": 0, "colour": 0, "shape": 0}
        by_size = {s: [0, 0] for s in world.SIZES}
        for img, a in zip(out, attrs):
            bg, colour, shape = check(img)
            hits["bg"] += bg == a["bg"]
            hits["colour"] += colour == a["colour"]
            hits["shape"] += shape == a["shape"]
            by_size[a["size"]][0] += shape == a["shape"]
            by_size[a["size"]][1] += 1
        heads = sum(world.SHAPES[k] == a["shape"] for k, a in zip(read, attrs))
        print(split, " ".join(f"{k} {v}%" for k, v in hits.items()),
              " ".join(f"shape[{s}] {100 * h // max(1, n)}%" for s, (h, n) in by_size.items()),
              f"(shape head {heads}%)")


if __name__ == "__main__":
    main()
