"""Training pairs of the shapes upsamplers: a low-resolution input corrupted as the paper corrupts its upsamplers'
inputs, and the analytic anti-aliased render of the same scene at 4x the size.

- up256 (64 -> 256): the input is the world's 64 px render (hard-edged, as the decoder learnt to draw it, or
  anti-aliased), Gaussian-blurred and with a little noise; the target the 256 px analytic render.
- up1024 (256 -> 1024): the input is the 256 px analytic render under a BSR-style mix (blur, noise, down-up
  resampling, JPEG); the target the 1024 px analytic render.

Both see perturbed scenes as well (`scene`): a smooth random warp of the world coordinates gives lumpy outlines like
the decoder's. Broad lumps are in input and target alike, so the nets keep them rather than invent another shape;
fine ripples are in the input only, so the nets remove them with the staircases and the blur. Crops are centred near the object's outline
most of the time: edges are what the nets are for, and a small fraction of the pixels.
"""
import io
import math

import numpy as np
import torch
import torch.nn.functional as F

import world

S = world.S


def random_warp(rng, wavelengths, amplitude, base=None):
    """A smooth displacement of the world coordinates (64 px units): three plane waves of the given wavelengths and
    amplitude range each, added to `base` (another warp) when given."""
    waves = []
    for _ in range(3):
        phi = rng.uniform(0, 2 * math.pi)
        freq = 2 * math.pi / rng.uniform(*wavelengths)
        waves.append((math.cos(phi) * freq, math.sin(phi) * freq, rng.uniform(0, 2 * math.pi), rng.uniform(0, 2 * math.pi),
                      rng.uniform(*amplitude), rng.uniform(*amplitude)))

    def warp(u, v):
        du, dv = base(u, v) if base is not None else (np.zeros_like(u), np.zeros_like(v))
        for fx, fy, pu, pv, au, av in waves:
            t = fx * u + fy * v
            du = du + au * np.sin(t + pu)
            dv = dv + av * np.sin(t + pv)
        return du, dv

    return warp


def scene(rng):
    """A scene and the warps of its target and its input. The target's outline may have broad lumps (wavelengths of
    20-48 px: up to about the 8th harmonic of a large circle), which the input shows too, so the nets learn to keep
    them; the input alone may also have fine ripples (3-8 px), which the nets learn to remove, as they must remove
    the jaggies and small wobbles of the decoder's outlines."""
    attrs = world.sample_attrs(rng, allow_held_out=True)
    world.render(attrs, rng)  # places the object (cx, cy, r)
    target = random_warp(rng, (20, 48), (0.03, 0.12)) if rng.random() < 0.5 else None
    ripple = rng.random() < 0.5
    return attrs, target, (random_warp(rng, (3, 8), (0.02, 0.1), target) if ripple else target)


def edge_centre(rng, attrs, size, jitter):
    """A point near the object's outline (or anywhere, 20 % of the time), in pixels of a size-px render."""
    k = size / S
    if rng.random() < 0.2:
        return rng.uniform(0, size), rng.uniform(0, size)
    a = rng.uniform(0, 2 * math.pi)
    rad = attrs["r"] * rng.uniform(0.45, 1.1)
    return ((attrs["cx"] + rad * math.cos(a)) * k + rng.normal(0, jitter), (attrs["cy"] + rad * math.sin(a)) * k + rng.normal(0, jitter))


def window(centre, crop, size):
    x = int(np.clip(round(centre[0] - crop / 2), 0, size - crop))
    y = int(np.clip(round(centre[1] - crop / 2), 0, size - crop))
    return x, y


def gaussian_blur(x, sigma):
    """x float [3, h, w]; separable Gaussian, reflect padding."""
    if sigma < 0.05:
        return x
    r = max(1, int(math.ceil(3 * sigma)))
    t = torch.arange(-r, r + 1, dtype=torch.float32)
    k = torch.exp(-t * t / (2 * sigma * sigma))
    k = (k / k.sum()).view(1, 1, 1, -1).repeat(3, 1, 1, 1)
    y = F.pad(x[None], (r, r, r, r), mode="reflect")
    y = F.conv2d(y, k, groups=3)
    y = F.conv2d(y, k.transpose(2, 3), groups=3)
    return y[0]


def jpeg(x, quality):
    from PIL import Image
    img = Image.fromarray((x.clamp(0, 1) * 255).round().byte().permute(1, 2, 0).numpy())
    buf = io.BytesIO()
    img.save(buf, format="JPEG", quality=int(quality))
    buf.seek(0)
    return torch.from_numpy(np.asarray(Image.open(buf).convert("RGB"), dtype=np.float32) / 255).permute(2, 0, 1)


def to_chw(img):
    """float [h, w, 3] 0..255 -> float [3, h, w] 0..1"""
    return torch.from_numpy(np.ascontiguousarray(img / 255, dtype=np.float32)).permute(2, 0, 1)


def pair_up256(rng, crop=32):
    """(input [3, crop, crop], target [3, 4crop, 4crop]), both 0..1."""
    attrs, warp, input_warp = scene(rng)
    hard = rng.random() < 0.7
    low = to_chw(world.paint(attrs, world.coverage(attrs, S, ss=1 if hard else 4, warp=input_warp)))
    if rng.random() < 0.6:
        low = gaussian_blur(low, rng.uniform(0.2, 0.9))
    if rng.random() < 0.5:
        low = low + torch.randn(low.shape, generator=torch.Generator().manual_seed(int(rng.integers(1 << 31)))) * rng.uniform(0, 0.02)
    x, y = window(edge_centre(rng, attrs, S, 3.0), crop, S)
    target = to_chw(world.paint(attrs, world.coverage(attrs, 4 * S, crop=(4 * x, 4 * y, 4 * crop, 4 * crop), ss=4, warp=warp)))
    return low[:, y:y + crop, x:x + crop].clamp(0, 1), target


def pair_up1024(rng, crop=48, margin=8):
    """(input [3, crop, crop] at 256 px, target [3, 4crop, 4crop] at 1024 px), both 0..1."""
    attrs, warp, input_warp = scene(rng)
    size = 4 * S
    x, y = window(edge_centre(rng, attrs, size, 10.0), crop, size)
    # the input window with a margin, so blur and resampling see real neighbours
    mx0, my0 = max(0, x - margin), max(0, y - margin)
    mx1, my1 = min(size, x + crop + margin), min(size, y + crop + margin)
    low = to_chw(world.paint(attrs, world.coverage(attrs, size, crop=(mx0, my0, mx1 - mx0, my1 - my0), ss=4, warp=input_warp)))
    # BSR-style degradations, each with its own probability and in a random order
    ops = ["blur", "resample", "noise", "jpeg"]
    rng.shuffle(ops)
    for op in ops:
        if op == "blur" and rng.random() < 0.6:
            low = gaussian_blur(low, rng.uniform(0.2, 1.5))
        elif op == "resample" and rng.random() < 0.5:
            h, w = low.shape[1:]
            f = rng.uniform(1.0, 2.0)
            mode = ["bilinear", "bicubic", "area"][rng.integers(3)]
            small = F.interpolate(low[None], size=(max(4, int(h / f)), max(4, int(w / f))), mode=mode,
                                  **({} if mode == "area" else {"align_corners": False}))
            low = F.interpolate(small, size=(h, w), mode="bicubic" if mode != "area" else "bilinear", align_corners=False)[0]
        elif op == "noise" and rng.random() < 0.5:
            g = torch.Generator().manual_seed(int(rng.integers(1 << 31)))
            low = low + torch.randn(low.shape, generator=g) * rng.uniform(0, 0.03)
        elif op == "jpeg" and rng.random() < 0.4:
            low = jpeg(low, rng.uniform(40, 95))
    low = low.clamp(0, 1)[:, y - my0:y - my0 + crop, x - mx0:x - mx0 + crop]
    target = to_chw(world.paint(attrs, world.coverage(attrs, 4 * size, crop=(4 * x, 4 * y, 4 * crop, 4 * crop), ss=3, warp=warp)))
    return low, target


PAIRS = {"up256": pair_up256, "up1024": pair_up1024}


class PairPool:
    """A pool of rendered pairs, a few replaced each step: rendering a 1024 px target costs more than a training step
    on it, so every pair is used several times, and the pool keeps turning over."""

    def __init__(self, stage, seed, size, refresh):
        self.make = PAIRS[stage]
        self.rng = np.random.default_rng(seed)
        self.pairs = [self.make(self.rng) for _ in range(size)]
        self.refresh = refresh

    def batch(self, n):
        for _ in range(self.refresh):
            self.pairs[self.rng.integers(len(self.pairs))] = self.make(self.rng)
        idx = self.rng.choice(len(self.pairs), n, replace=False)
        return torch.stack([self.pairs[i][0] for i in idx]), torch.stack([self.pairs[i][1] for i in idx])


def fixed_set(stage, seed, n):
    rng = np.random.default_rng(seed)
    pairs = [PAIRS[stage](rng) for _ in range(n)]
    return torch.stack([p[0] for p in pairs]), torch.stack([p[1] for p in pairs])
