#!/usr/bin/python3
"""Trains the shapes-v1 stages on CPU: clip, then prior and decoder (both use the frozen CLIP).

  /usr/bin/python3 models/train/train.py clip [--minutes M] [--resume]
  /usr/bin/python3 models/train/train.py prior [--minutes M] [--resume]
  /usr/bin/python3 models/train/train.py sketch [--minutes M] [--resume]
  /usr/bin/python3 models/train/train.py decoder [--minutes M] [--resume]

Hyperparameters live in config.json. Checkpoints (model, optimiser, step, elapsed seconds) go to
models/train/checkpoints/<stage>.pt every config.checkpointEveryMinutes and at the end; --resume continues from
one (the data of step k is drawn from seed + k, so a resumed run sees the same stream). --minutes is the wall-clock
budget of this invocation.
"""
import argparse
import math
import os
import sys
import time

import numpy as np
import torch
import torch.nn.functional as F

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import world  # noqa: E402
from nets import CLIP_MEAN, CLIP_STD, Clip, Decoder, Prior, Sketcher  # noqa: E402

torch.set_num_threads(2)
CFG = world.CONFIG
L, D, H = CFG["dims"]["L"], CFG["dims"]["D"], CFG["dims"]["H"]
COLOUR_DIMS = CFG["dims"]["colour"]  # the image embedding's colour part (nets.ImageEncoder)
CKPT = os.path.join(HERE, "checkpoints")
SNAP = os.path.join(HERE, "snapshots")
MEAN = torch.tensor(CLIP_MEAN).view(1, 3, 1, 1)
STD = torch.tensor(CLIP_STD).view(1, 3, 1, 1)
T = 1000
PRIOR_CLIP_SAMPLE = 10.0  # the prior's x0 clamp when sampling (manifest clipSample), in normalised units


def alphas_cumprod():
    f = lambda s: math.cos((s + 0.008) / 1.008 * math.pi / 2) ** 2  # noqa: E731
    betas = [min(1 - f((i + 1) / T) / f(i / T), 0.999) for i in range(T)]
    return torch.tensor(np.cumprod(1 - np.array(betas, dtype=np.float64)), dtype=torch.float32)


ABAR = alphas_cumprod()


def clip_pixels(imgs_u8):
    x = torch.from_numpy(imgs_u8).permute(0, 3, 1, 2).float() / 255.0
    return (x - MEAN) / STD


def unit_pixels(imgs_u8):
    """uint8 [n,S,S,3] -> float [n,3,S,S] in [-1, 1], the decoder's image space."""
    return torch.from_numpy(imgs_u8).permute(0, 3, 1, 2).float() / 127.5 - 1


def make_clip():
    return Clip(len(world.VOCAB), L, H, D, CFG["clip"]["layers"], CFG["clip"]["heads"], len(world.COLOURS),
                len(world.SHAPES), COLOUR_DIMS)


def load_state(stage):
    """The full checkpoint when there is one, else the committed fp16 snapshot (weights only, no optimiser)."""
    path = os.path.join(CKPT, stage + ".pt")
    ck = torch.load(path if os.path.exists(path) else os.path.join(SNAP, stage + ".pt"))
    for key in ("model", "ema"):
        if key in ck:
            ck[key] = cast(ck[key], torch.float32)
    return ck


def has_state(stage):
    return any(os.path.exists(os.path.join(d, stage + ".pt")) for d in (CKPT, SNAP))


def load_clip():
    clip = make_clip()
    clip.load_state_dict(load_state("clip")["model"], strict=False)
    clip.eval()
    for p in clip.parameters():
        p.requires_grad_(False)
    return clip


def make_sketcher():
    return Sketcher(D, len(world.SHAPES), COLOUR_DIMS)


def make_decoder():
    return Decoder(D, len(world.SHAPES), COLOUR_DIMS, tuple(CFG["decoder"]["channels"]))


def load_decoder():
    """The decoder with its EMA weights when training kept them (what is exported), else its raw weights."""
    dec = make_decoder()
    ck = load_state("decoder")
    dec.load_state_dict(ck.get("ema", ck["model"]))
    return dec


def load_prior():
    """The prior and the embedding stats it was trained with (normalised = (embedding - mean) / std)."""
    ck = load_state("prior")
    prior = Prior(D, H, CFG["prior"]["width"], CFG["prior"]["blocks"])
    prior.load_state_dict(ck["model"])
    prior.eval()
    return prior, ck["mean"], ck["std"]


def cast(state, dtype):
    return {k: (v.to(dtype) if v.is_floating_point() else v) for k, v in state.items()}


def save(stage, model, opt, step, elapsed, extra=None, ema=None):
    os.makedirs(CKPT, exist_ok=True)
    tmp = os.path.join(CKPT, stage + ".pt.tmp")
    weights = {"model": model.state_dict(), **({"ema": ema} if ema is not None else {})}
    torch.save({**weights, "opt": opt.state_dict(), "step": step, "elapsed": elapsed, **(extra or {})}, tmp)
    os.replace(tmp, os.path.join(CKPT, stage + ".pt"))
    # a small weights-only copy (fp16) that is committed, so a later session can resume without the checkpoints
    os.makedirs(SNAP, exist_ok=True)
    torch.save({**{k: cast(v, torch.float16) for k, v in weights.items()}, "step": step, "elapsed": elapsed, **(extra or {})},
               os.path.join(SNAP, stage + ".pt"))


def aux_targets(attrs):
    c = [world.COLOURS.index(a["colour"]) for a in attrs]
    bg = [world.COLOURS.index(a["bg"]) for a in attrs]
    sh = [world.SHAPES.index(a["shape"]) for a in attrs]
    sz = [world.SIZES.index(a["size"]) for a in attrs]
    xy = [[a["cx"] / 32 - 1, a["cy"] / 32 - 1] for a in attrs]
    return torch.tensor(c), torch.tensor(bg), torch.tensor(sh), torch.tensor(sz), torch.tensor(xy)


def aux_heads(out):
    """CLIP's attribute-head output [n, ...] split into colour, bg, shape, size logits and the centre (x, y)."""
    nc, ns = len(world.COLOURS), len(world.SHAPES)
    return out[:, :nc], out[:, nc:2 * nc], out[:, 2 * nc:2 * nc + ns], out[:, 2 * nc + ns:2 * nc + ns + 2], out[:, -2:]


def head_accuracy(clip, emb, attrs):
    """How often CLIP's attribute heads read embeddings [n,D] right against the scenes' attrs (%), and their centre
    error (px)."""
    o_c, o_bg, o_sh, o_sz, o_xy = aux_heads(clip.aux(emb))
    c, bg, sh, sz, xy = aux_targets(attrs)
    acc = lambda o, y: round(100 * (o.argmax(1) == y).float().mean().item(), 1)  # noqa: E731
    return {"colour": acc(o_c, c), "bg": acc(o_bg, bg), "shape": acc(o_sh, sh), "size": acc(o_sz, sz),
            "xy err px": round(((o_xy - xy).abs().mean() * 32).item(), 1)}


def step_clip(model, step, cfg):
    rng = np.random.default_rng(CFG["seed"] * 7 + step)
    imgs, caps, attrs = world.batch(rng, cfg["batch"])
    txt, _ = model.text(torch.from_numpy(world.tokenize(caps)))
    img = model.image(clip_pixels(imgs))
    logits = model.logit_scale.exp().clamp(max=100) * img @ txt.t()
    labels = torch.arange(len(caps))
    # captions that leave attributes out match several images: soften by treating identical captions as positives
    same = torch.tensor([[a == b for b in caps] for a in caps], dtype=torch.float32)
    target = same / same.sum(1, keepdim=True)
    contrastive = 0.5 * (-(target * F.log_softmax(logits, 1)).sum(1).mean() - (target * F.log_softmax(logits.t(), 1)).sum(1).mean())
    o_c, o_bg, o_sh, o_sz, o_xy = aux_heads(model.aux(img))
    c, bg, sh, sz, xy = aux_targets(attrs)
    aux = (F.cross_entropy(o_c, c) + F.cross_entropy(o_bg, bg) + cfg.get("shapeAuxWeight", 1.0) * F.cross_entropy(o_sh, sh)
           + F.cross_entropy(o_sz, sz) + 4 * F.mse_loss(o_xy, xy))
    acc = (logits.argmax(1) == labels).float().mean().item()
    return contrastive + cfg["auxWeight"] * aux, {"contrastive": contrastive.item(), "aux": aux.item(), "top1": acc}


def embedding_stats(clip):
    rng = np.random.default_rng(CFG["seed"] + 99)
    embs = []
    with torch.no_grad():
        for _ in range(20):
            imgs, _, _ = world.batch(rng, 256)
            embs.append(clip.image(clip_pixels(imgs)))
    e = torch.cat(embs)
    return e.mean(0), e.std(0).clamp(min=1e-3)


def step_prior(model, step, cfg, clip, mean, std):
    rng = np.random.default_rng(CFG["seed"] * 11 + step)
    imgs, caps, _ = world.batch(rng, cfg["batch"])
    caps = ["" if rng.random() < cfg["textDropout"] else c for c in caps]
    ids = torch.from_numpy(world.tokenize(caps))
    with torch.no_grad():
        txt, hidden = clip.text(ids)
        x0 = (clip.image(clip_pixels(imgs)) - mean) / std
    g = torch.Generator().manual_seed(CFG["seed"] * 13 + step)
    t = torch.randint(0, T, (len(caps),), generator=g)
    noise = torch.randn(x0.shape, generator=g)
    a = ABAR[t][:, None]
    xt = a.sqrt() * x0 + (1 - a).sqrt() * noise
    pred = model(xt, t, txt, hidden, ids != 0)
    loss = F.mse_loss(pred, x0)
    return loss, {"mse": loss.item()}


def random_keep_mask(rng, n, S=64):
    """keep-masks (1 keep, 0 repaint): rectangles or free-form blobs (unions of random discs along a stroke)."""
    keep = np.ones((n, S, S), dtype=np.float32)
    yy, xx = np.mgrid[0:S, 0:S] + 0.5
    for i in range(n):
        if rng.random() < 0.5:
            w, h = rng.integers(8, 48, size=2)
            x0, y0 = rng.integers(0, S - w + 1), rng.integers(0, S - h + 1)
            keep[i, y0:y0 + h, x0:x0 + w] = 0
        else:
            x, y = rng.uniform(8, 56, size=2)
            for _ in range(rng.integers(2, 7)):
                r = rng.uniform(4, 12)
                keep[i][(xx - x) ** 2 + (yy - y) ** 2 <= r * r] = 0
                x, y = np.clip([x + rng.uniform(-12, 12), y + rng.uniform(-12, 12)], 4, 60)
    return keep


def unit_colours(names):
    """Palette colours by name -> float [n,3] in the decoder's image space [-1, 1] (as unit_pixels)."""
    return torch.from_numpy(np.array([world.PALETTE[c] for c in names], dtype=np.float32) / 127.5 - 1)


def object_mask(x0, attrs):
    """1 where the pixel differs from the scene's background colour (x0 in [-1, 1])."""
    bg = unit_colours([a["bg"] for a in attrs])
    return ((x0 - bg[:, :, None, None]).abs().amax(dim=1, keepdim=True) > 1e-3).float()


def weighted_mse(pred, x0, obj=None, object_weight=0.0, keep=None):
    """MSE with object pixels (obj [n,1,S,S]) weighted 1 + object_weight (objects cover 4-20 % of the pixels:
    unweighted, shape and position drown in background); keep [n] selects samples (None: all)."""
    weight = torch.ones_like(pred) if obj is None else (1 + object_weight * obj).expand_as(pred)
    if keep is not None:
        weight = weight * keep[:, None, None, None]
    return (weight * (pred - x0) ** 2).sum() / weight.sum().clamp(min=1)


def per_area(obj):
    """obj rescaled so that every sample's object carries the same total weight (the batch's mean area): a small
    object covers a third of a large one's pixels, and its shape, the sketcher's weakest part, was outweighed."""
    area = obj.sum(dim=(1, 2, 3), keepdim=True).clamp(min=1)
    return obj * area.mean() / area


def object_mse(pred, x0, obj):
    """The plain MSE over object pixels only (logged: the part of the error that shape lives in)."""
    return (((pred - x0) ** 2 * obj).sum() / (3 * obj.sum()).clamp(min=1)).item()


def sketcher_targets(attrs):
    """What the sketcher's heads read (Sketcher.read), from the world's attributes of each scene."""
    half = world.S / 2
    return {"shape": torch.tensor([world.SHAPES.index(a["shape"]) for a in attrs]),
            "centre": torch.tensor([[a["cx"] / half - 1, a["cy"] / half - 1] for a in attrs]),
            "radius": torch.tensor([[a["r"] / half] for a in attrs]),
            "colour": unit_colours([a["colour"] for a in attrs]),
            "background": unit_colours([a["bg"] for a in attrs])}


def sketcher_loss(drawn, parts, x0, obj, attrs, object_weight, aux_weight, keep=None):
    """The drawing's pixel error (every object weighted the same, whatever its size) plus aux_weight times the heads'
    errors against the scene's attributes (cross-entropy on shape, squared error on the rest), over the kept samples."""
    keep = torch.ones(len(attrs)) if keep is None else keep
    n = keep.sum().clamp(min=1)
    t = sketcher_targets(attrs)
    heads = F.cross_entropy(parts["shape"], t["shape"], reduction="none")
    for k in ("centre", "radius", "colour", "background"):
        heads = heads + ((parts[k] - t[k]) ** 2).sum(dim=1)
    heads = (heads * keep).sum() / n
    pixels = weighted_mse(drawn, x0, per_area(obj), object_weight, keep)
    shape_ok = ((parts["shape"].argmax(dim=1) == t["shape"]).float() * keep).sum() / n
    return pixels + aux_weight * heads, {"drawnMse": pixels.item(), "heads": heads.item(), "shapeRead": shape_ok.item()}


def step_sketch(model, step, cfg, clip):
    rng = np.random.default_rng(CFG["seed"] * 23 + step)
    imgs, _, attrs = world.batch(rng, cfg["batch"])
    with torch.no_grad():
        emb = clip.image(clip_pixels(imgs))
    x0 = unit_pixels(imgs)
    obj = object_mask(x0, attrs)
    drawn, parts = model(emb, parts=True)
    drawn = F.pixel_shuffle(drawn, 2)
    loss, info = sketcher_loss(drawn, parts, x0, obj, attrs, cfg["objectWeight"], cfg["auxWeight"])
    return loss, {"mse": F.mse_loss(drawn, x0).item(), "objMse": object_mse(drawn, x0, obj), **info}


def step_decoder(model, step, cfg, clip):
    rng = np.random.default_rng(CFG["seed"] * 17 + step)
    n = cfg["batch"]
    imgs, _, attrs = world.batch(rng, n)
    with torch.no_grad():
        emb = clip.image(clip_pixels(imgs))
    drop = torch.from_numpy(rng.random(n) < cfg["embDropout"])
    emb = torch.where(drop[:, None], torch.zeros_like(emb), emb)
    x0 = unit_pixels(imgs)
    # half the batch inpaints: the masked image (repaint region zeroed) and the keep-mask; the rest sees zeros there
    inpaint = rng.random(n) < cfg["inpaintFraction"]
    keep = torch.from_numpy(random_keep_mask(rng, n)) * torch.from_numpy(inpaint.astype(np.float32))[:, None, None]
    keep = keep[:, None]
    masked = x0 * keep
    g = torch.Generator().manual_seed(CFG["seed"] * 19 + step)
    t = torch.randint(0, T, (n,), generator=g)
    noise = torch.randn(x0.shape, generator=g)
    a = ABAR[t][:, None, None, None]
    xt = a.sqrt() * x0 + (1 - a).sqrt() * noise
    pred, sketch, drawn, parts = model(torch.cat([xt, masked, keep], dim=1), t, emb, return_sketch=True)
    obj = object_mask(x0, attrs)
    loss = weighted_mse(pred, x0, obj, cfg["objectWeight"])
    # the sketch head and the sketcher learn the image from the embedding alone (not where it was dropped)
    kept = (~drop).float()
    sketch_err = weighted_mse(sketch, F.avg_pool2d(x0, 4), keep=kept)
    drawn_loss, drawn_info = sketcher_loss(drawn, parts, x0, obj, attrs, cfg["objectWeight"], cfg["sketcherAuxWeight"], kept)
    loss = loss + cfg["sketchWeight"] * sketch_err + cfg["sketcherWeight"] * drawn_loss
    return loss, {"mse": F.mse_loss(pred, x0).item(), "objMse": object_mse(pred, x0, obj),
                  "sketchMse": sketch_err.item(), **drawn_info}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("stage", choices=["clip", "prior", "sketch", "decoder"])
    ap.add_argument("--minutes", type=float)
    ap.add_argument("--resume", action="store_true")
    ap.add_argument("--anneal", action="store_true", help="cosine-decay the lr to 10%% over this invocation's budget")
    ap.add_argument("--lr", type=float, help="peak learning rate of this invocation (default: the stage's lr in config.json)")
    ap.add_argument("--take-sketcher", action="store_true",
                    help="decoder, with --resume: replace its sketcher with the sketch stage's (fresh Adam state for all)")
    args = ap.parse_args()
    cfg = CFG[args.stage]
    minutes = args.minutes if args.minutes is not None else cfg["minutes"]
    peak_lr = args.lr if args.lr is not None else cfg["lr"]
    torch.manual_seed(CFG["seed"])
    extra = {}
    if args.stage == "clip":
        model = make_clip()
        fn = lambda s: step_clip(model, s, cfg)  # noqa: E731
    elif args.stage == "prior":
        clip = load_clip()
        mean, std = embedding_stats(clip)
        extra = {"mean": mean, "std": std}
        model = Prior(D, H, cfg["width"], cfg["blocks"])
        fn = lambda s: step_prior(model, s, cfg, clip, mean, std)  # noqa: E731
    elif args.stage == "sketch":
        clip = load_clip()
        model = make_sketcher()
        fn = lambda s: step_sketch(model, s, cfg, clip)  # noqa: E731
    else:
        clip = load_clip()
        model = make_decoder()
        if has_state("sketch"):  # a decoder checkpoint that has its own sketcher overrides this on resume
            model.sketcher.load_state_dict(load_state("sketch")["model"])
        fn = lambda s: step_decoder(model, s, cfg, clip)  # noqa: E731
    opt = torch.optim.AdamW(model.parameters(), lr=cfg["lr"], weight_decay=0.0)
    step, elapsed = 0, 0.0
    ema_decay = cfg.get("emaDecay")
    saved_ema = {}
    if args.resume and has_state(args.stage):
        ck = load_state(args.stage)
        if args.take_sketcher:
            # the sketch stage's sketcher (loaded above) replaces the trained one: its weights and EMA are dropped, and
            # so is the Adam state, which is stored by position
            for key in ("model", "ema"):
                ck[key] = {k: v for k, v in ck.get(key, {}).items() if not k.startswith("sketcher.")}
            ck.pop("opt", None)
        missing, _ = model.load_state_dict(ck["model"], strict=False)
        if missing:
            print("new parameters (fresh Adam state):", missing, flush=True)
        if "opt" in ck:
            # the trained parameters keep their Adam state, in the saved groups (a network that grew before has one
            # group per growth; new parameters are registered last); parameters new to this run get a group of their own
            named = dict(model.named_parameters())
            trained = [p for k, p in named.items() if k not in missing]
            groups, first = [], 0
            for g in ck["opt"]["param_groups"]:
                groups.append({"params": trained[first:first + len(g["params"])]})
                first += len(g["params"])
            opt = torch.optim.AdamW(groups, lr=cfg["lr"], weight_decay=0.0)
            opt.load_state_dict(ck["opt"])
            if missing:
                opt.add_param_group({"params": [named[k] for k in missing]})
        step, elapsed = ck["step"], ck["elapsed"]
        saved_ema = ck.get("ema", {})
        print(f"resumed {args.stage} at step {step} ({elapsed / 60:.1f} min trained)", flush=True)
    # the EMA starts from the saved one, and from the current weights for parameters it does not have
    ema = {**{k: v.detach().clone() for k, v in model.state_dict().items()}, **saved_ema} if ema_decay else None
    model.train()
    start = time.time()
    last_ckpt = start
    avg = {}
    first_step = step
    while time.time() - start < minutes * 60:
        lr = peak_lr * min(1.0, (step - first_step + 1) / 100)  # short warm-up, then constant (or annealed)
        if args.anneal:
            lr *= 0.55 + 0.45 * math.cos(math.pi * min(1.0, (time.time() - start) / (minutes * 60)))
        for group in opt.param_groups:
            group["lr"] = lr
        loss, info = fn(step)
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        if ema is not None:
            with torch.no_grad():
                for k, v in model.state_dict().items():
                    if v.is_floating_point():
                        ema[k].lerp_(v, 1 - ema_decay)
                    else:
                        ema[k].copy_(v)
        step += 1
        for k, v in info.items():
            avg[k] = 0.98 * avg.get(k, v) + 0.02 * v
        if step % 25 == 0:
            now = time.time()
            print(f"{args.stage} step {step} images {step * cfg['batch']} min {(elapsed + now - start) / 60:.1f} "
                  + " ".join(f"{k} {v:.4f}" for k, v in avg.items()), flush=True)
            if now - last_ckpt > CFG["checkpointEveryMinutes"] * 60:
                save(args.stage, model, opt, step, elapsed + now - start, extra, ema)
                last_ckpt = now
    save(args.stage, model, opt, step, elapsed + time.time() - start, extra, ema)
    print(f"done {args.stage}: step {step}, images {step * cfg['batch']}, {(elapsed + time.time() - start) / 60:.1f} min",
          flush=True)


if __name__ == "__main__":
    main()
