"""The shapes world: 64x64 RGB, a flat background colour and one flat object. Deterministic from a seed.

Attributes: shape, colour, size (small/large), position (5 anchors, or anywhere when the caption names none), background.
Some (shape, colour) pairs are held out of training (config.json world.heldOut) and used only for evaluation.
"""
import json
import math
import os
import re

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
CONFIG = json.load(open(os.path.join(HERE, "config.json")))
S = CONFIG["world"]["size"]

PALETTE = {
    "red": (220, 30, 30),
    "orange": (245, 140, 20),
    "yellow": (240, 220, 30),
    "green": (30, 170, 50),
    "blue": (30, 70, 220),
    "purple": (140, 50, 190),
    "white": (245, 245, 245),
    "black": (20, 20, 20),
}
COLOURS = list(PALETTE)
SHAPES = ["circle", "square", "triangle", "star", "cross"]
SIZES = ["small", "large"]
POSITIONS = {  # anchor centres (x, y)
    "top left": (16, 16),
    "top right": (48, 16),
    "bottom left": (16, 48),
    "bottom right": (48, 48),
    "centre": (32, 32),
}
POSITION_NAMES = list(POSITIONS)
HELD_OUT = {tuple(p) for p in CONFIG["world"]["heldOut"]}

SHAPE_WORDS = {"circle": ["circle", "disc", "disk"], "square": ["square", "box"], "triangle": ["triangle"],
               "star": ["star"], "cross": ["cross", "plus"]}
SIZE_WORDS = {"small": ["small", "tiny", "little"], "large": ["large", "big", "huge"]}
COLOUR_WORDS = {c: [c] for c in COLOURS}
COLOUR_WORDS["purple"] = ["purple", "violet"]
COLOUR_WORDS["white"] = ["white"]
COLOUR_WORDS["black"] = ["black"]
POS_WORDS = {}
for name in ["top left", "top right", "bottom left", "bottom right"]:
    v, h = name.split()
    up = {"top": "upper", "bottom": "lower"}[v]
    POS_WORDS[name] = [f"in the {name}", f"in the {name} corner", f"at the {name}", f"in the {up} {h}", name]
POS_WORDS["centre"] = ["in the centre", "in the center", "in the middle", "at the centre", "centred", "centered"]

SPECIAL = ["[PAD]", "[UNK]"]
WORDS = sorted({w for ws in list(SHAPE_WORDS.values()) + list(SIZE_WORDS.values()) + list(COLOUR_WORDS.values())
                + list(POS_WORDS.values()) for p in ws for w in p.split()}
               | set("a an the on with background and in at of one ,".split()))
VOCAB = {t: i for i, t in enumerate(SPECIAL + WORDS)}
L = CONFIG["dims"]["L"]
_TOKEN = re.compile(r"\w+|[^\w\s]+")


def tokenize(captions):
    """Same as the tokenizer.json (Lowercase, Whitespace pre-tokenizer, WordLevel): int64 [n, L] padded with 0."""
    ids = np.zeros((len(captions), L), dtype=np.int64)
    for i, c in enumerate(captions):
        toks = [VOCAB.get(t, VOCAB["[UNK]"]) for t in _TOKEN.findall(c.lower())]
        assert len(toks) <= L, c
        ids[i, : len(toks)] = toks
    return ids


def tokenizer_json():
    return {
        "version": "1.0", "truncation": None, "padding": None,
        "added_tokens": [{"id": VOCAB[t], "content": t, "single_word": False, "lstrip": False, "rstrip": False,
                          "normalized": False, "special": True} for t in SPECIAL],
        "normalizer": {"type": "Lowercase"}, "pre_tokenizer": {"type": "Whitespace"},
        "post_processor": None, "decoder": None,
        "model": {"type": "WordLevel", "vocab": VOCAB, "unk_token": "[UNK]"},
    }


_YY, _XX = np.mgrid[0:S, 0:S].astype(np.float32) + 0.5


def shape_mask(shape, cx, cy, r):
    return inside(shape, _XX - cx, _YY - cy, r)


def inside(shape, dx, dy, r):
    """Whether the points (dx, dy), relative to the object's centre in world pixels, lie inside the shape of radius r."""
    if shape == "circle":
        return dx * dx + dy * dy <= r * r
    if shape == "square":
        return (np.abs(dx) <= 0.85 * r) & (np.abs(dy) <= 0.85 * r)
    if shape == "triangle":  # pointing up, apex at cy - r, base at cy + 0.8 r
        return (dy >= -r) & (dy <= 0.8 * r) & (np.abs(dx) <= (dy + r) / 1.8 * 1.0)
    if shape == "cross":
        w = 0.36 * r
        return ((np.abs(dx) <= r) & (np.abs(dy) <= w)) | ((np.abs(dy) <= r) & (np.abs(dx) <= w))
    if shape == "star":  # five points, one pointing up
        R, ri = 1.08 * r, 0.45 * r
        theta = np.arctan2(dx, -dy)  # 0 = up
        d = np.sqrt(dx * dx + dy * dy)
        sector = 2 * math.pi / 5
        phi = np.mod(theta, sector)
        phi = np.where(phi > sector / 2, sector - phi, phi)
        ax, ay = R, 0.0
        bx, by = ri * math.cos(sector / 2), ri * math.sin(sector / 2)
        nx, ny = (by - ay), -(bx - ax)  # normal of segment A->B, pointing away from the origin
        c = nx * ax + ny * ay
        px, py = d * np.cos(phi), d * np.sin(phi)
        return nx * px + ny * py <= c
    raise ValueError(shape)


def coverage(attrs, size, crop=None, ss=4, warp=None):
    """The analytic anti-aliased render of a scene at any size: the fraction of each pixel the object covers, by ss x ss
    supersampling, float32 [h, w]. `crop` (x0, y0, w, h) in that render's pixels limits the work to a window;
    `warp(u, v) -> (du, dv)` displaces the world coordinates (64 px units) before the test, for perturbed scenes.
    At size S with ss 1 this is exactly the mask `render` draws (pixel centres)."""
    x0, y0, w, h = crop or (0, 0, size, size)
    k = S / size
    offsets = (np.arange(ss, dtype=np.float32) + 0.5) / ss
    us = ((x0 + np.arange(w, dtype=np.float32))[:, None] + offsets[None, :]).reshape(-1) * k
    vs = ((y0 + np.arange(h, dtype=np.float32))[:, None] + offsets[None, :]).reshape(-1) * k
    u, v = np.meshgrid(us, vs)
    if warp is not None:
        du, dv = warp(u, v)
        u, v = u + du, v + dv
    m = inside(attrs["shape"], u - attrs["cx"], v - attrs["cy"], attrs["r"]).astype(np.float32)
    return m.reshape(h, ss, w, ss).mean(axis=(1, 3))


def paint(attrs, cover):
    """float32 [h, w, 3] in 0..255: the background and object colours mixed by coverage."""
    bg = np.array(PALETTE[attrs["bg"]], dtype=np.float32)
    fg = np.array(PALETTE[attrs["colour"]], dtype=np.float32)
    return bg + cover[..., None] * (fg - bg)


TEMPLATE_RADII = (8.0, 11.0, 15.0)


def templates():
    """Per shape, its silhouettes (bool [S,S], centred) at the checker's radii: what the benchmark's checker and
    probe_sketch.py compare a drawn object against."""
    return {s: [shape_mask(s, S / 2, S / 2, r) for r in TEMPLATE_RADII] for s in SHAPES}


def sample_attrs(rng, allow_held_out=False, held_out_only=False):
    while True:
        shape = SHAPES[rng.integers(len(SHAPES))]
        colour = COLOURS[rng.integers(len(COLOURS))]
        held = (shape, colour) in HELD_OUT
        if held_out_only and not held:
            continue
        if held and not (allow_held_out or held_out_only):
            continue
        break
    bg = colour
    while bg == colour:
        bg = COLOURS[rng.integers(len(COLOURS))]
    return {"shape": shape, "colour": colour, "bg": bg, "size": SIZES[rng.integers(2)],
            "position": POSITION_NAMES[rng.integers(5)] if rng.random() < 0.75 else None}


def render(attrs, rng):
    """uint8 [S,S,3]; fills attrs['cx'], ['cy'], ['r'] (the drawn centre and radius)."""
    r = float(rng.uniform(7, 9.5) if attrs["size"] == "small" else rng.uniform(13, 16))
    if attrs["position"] is None:
        cx, cy = rng.uniform(r, S - r), rng.uniform(r, S - r)
    else:
        ax, ay = POSITIONS[attrs["position"]]
        cx = float(np.clip(ax + rng.uniform(-3, 3), r - 3, S - r + 3))
        cy = float(np.clip(ay + rng.uniform(-3, 3), r - 3, S - r + 3))
    img = np.empty((S, S, 3), dtype=np.uint8)
    img[:] = PALETTE[attrs["bg"]]
    img[shape_mask(attrs["shape"], cx, cy, r)] = PALETTE[attrs["colour"]]
    attrs.update(cx=float(cx), cy=float(cy), r=r)
    return img


def pick(rng, words):
    return words[rng.integers(len(words))]


def caption(attrs, rng, full=False):
    """A caption from several templates; unless full, size, position and background are sometimes left out
    (the image then shows any size / anywhere / any background)."""
    size = attrs["size"] if (full or rng.random() < 0.7) else None
    bg = attrs["bg"] if (full or rng.random() < 0.93) else None
    obj = " ".join(([pick(rng, SIZE_WORDS[size])] if size else []) + [pick(rng, COLOUR_WORDS[attrs["colour"]]),
                                                                        pick(rng, SHAPE_WORDS[attrs["shape"]])])
    pos = pick(rng, POS_WORDS[attrs["position"]]) if attrs["position"] else None
    bgw = pick(rng, COLOUR_WORDS[bg]) if bg else None
    if bgw is None:
        templates = ["a {obj} {pos}", "one {obj} {pos}"] if pos else ["a {obj}", "one {obj}"]
    elif pos:
        templates = ["a {obj} {pos}, {bg} background", "a {obj} {pos} on {bg}", "{bg} background with a {obj} {pos}",
                     "a {obj} on {bg} {pos}", "a {obj} {pos} on a {bg} background"]
    else:
        templates = ["a {obj} on {bg}", "a {obj} on a {bg} background", "{bg} background with a {obj}",
                     "a {obj}, {bg} background"]
    text = pick(rng, templates).format(obj=obj, pos=pos, bg=bgw)
    text = re.sub(r"^a ([aeiou])", r"an \1", text)
    return text, {"size": size is not None, "bg": bg is not None, "position": pos is not None}


def batch(rng, n, held_out=False):
    """n training pairs: images uint8 [n,S,S,3], captions, attrs. Held-out (shape, colour) pairs never appear."""
    imgs, caps, attrs = np.empty((n, S, S, 3), dtype=np.uint8), [], []
    for i in range(n):
        a = sample_attrs(rng, held_out_only=held_out)
        imgs[i] = render(a, rng)
        caps.append(caption(a, rng)[0])
        attrs.append(a)
    return imgs, caps, attrs


if __name__ == "__main__":
    rng = np.random.default_rng(0)
    imgs, caps, attrs = batch(rng, 12)
    print(len(VOCAB), "tokens")
    for c in caps:
        print(c)
    from PIL import Image
    grid = np.concatenate([np.concatenate(list(imgs[r * 6:(r + 1) * 6]), axis=1) for r in range(2)], axis=0)
    Image.fromarray(grid).resize((grid.shape[1] * 2, grid.shape[0] * 2), Image.NEAREST).save("/tmp/world.png")
