#!/usr/bin/python3
"""Trains the shapes upsamplers on CPU: up256 (64 -> 256) and up1024 (256 -> 1024), regression nets on the world's
analytic renders (upsampler_data.py). The two are independent and can train at the same time (1 thread each).

  /usr/bin/python3 models/train/train_upsamplers.py up256|up1024 [--minutes M] [--resume] [--anneal] [--threads N]

Hyperparameters live in config.json (up256, up1024). Checkpoints go to checkpoints/<stage>.pt every
config.checkpointEveryMinutes and at the end, fp16 snapshots to snapshots/<stage>.pt (committed); --resume continues
from either.
"""
import argparse
import functools
import math
import os
import sys
import time

import torch
import torch.nn.functional as F

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import upsampler_data  # noqa: E402
from nets import Upsampler  # noqa: E402
from train import CFG, has_state, load_state, save  # noqa: E402


def make_upsampler(stage):
    cfg = CFG[stage]
    return Upsampler(cfg["channels"], cfg["dilations"], cfg["unshuffle"], smooth=cfg["smooth"], head=cfg["head"])


def load_weights(model, state):
    """Loads trained weights; blur kernels in older checkpoints are dropped (they follow from config.json's sigmas)."""
    model.load_state_dict({k: v for k, v in state.items() if not k.endswith(".kernel")})


def edge_band(target, width):
    """1 where the target has an edge within `width` pixels (its local range exceeds 0.05), else 0."""
    hi = F.max_pool2d(target, width, 1, width // 2)
    lo = -F.max_pool2d(-target, width, 1, width // 2)
    return ((hi - lo).amax(1, keepdim=True) > 0.05).float()


def weighted_l1(pred, target, edge_weight):
    w = 1 + edge_weight * edge_band(target, 7)
    return ((pred - target).abs() * w).sum() / (w.sum() * 3)


def evaluate(model, inputs, targets):
    model.eval()
    with torch.no_grad():
        pred = torch.cat([model(inputs[i:i + 8]) for i in range(0, len(inputs), 8)]).clamp(0, 1)
    model.train()
    mse = ((pred - targets) ** 2).mean(dim=(1, 2, 3))
    band = edge_band(targets, 7)
    edge_l1 = ((pred - targets).abs() * band).sum() / (band.sum() * 3)
    base = F.interpolate(inputs, scale_factor=4, mode="bilinear", align_corners=False).clamp(0, 1)
    base_edge = ((base - targets).abs() * band).sum() / (band.sum() * 3)
    return {"psnr": (10 * torch.log10(1 / mse.clamp_min(1e-10))).mean().item(), "edgeL1": edge_l1.item(),
            "bilinearEdgeL1": base_edge.item()}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("stage", choices=["up256", "up1024"])
    ap.add_argument("--minutes", type=float)
    ap.add_argument("--resume", action="store_true")
    ap.add_argument("--anneal", action="store_true", help="cosine-decay the lr to 10%% over this invocation's budget")
    ap.add_argument("--lr", type=float)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    cfg = CFG[args.stage]
    minutes = args.minutes if args.minutes is not None else cfg["minutes"]
    peak_lr = args.lr if args.lr is not None else cfg["lr"]
    torch.manual_seed(CFG["seed"])
    model = make_upsampler(args.stage)
    opt = torch.optim.AdamW(model.parameters(), lr=peak_lr, weight_decay=0.0)
    step, elapsed = 0, 0.0
    if args.resume and has_state(args.stage):
        ck = load_state(args.stage)
        load_weights(model, ck["model"])
        if "opt" in ck:
            opt.load_state_dict(ck["opt"])
        step, elapsed = ck["step"], ck["elapsed"]
        print(f"resumed {args.stage} at step {step} ({elapsed / 60:.1f} min trained)", flush=True)
    print(f"{args.stage}: {sum(p.numel() for p in model.parameters())} parameters", flush=True)
    pair = functools.partial(upsampler_data.PAIRS[args.stage], crop=cfg["crop"])
    upsampler_data.PAIRS[args.stage + "-train"] = pair
    # a resumed run draws a fresh stream (seed + step), so it does not replay the pairs it already saw
    pool = upsampler_data.PairPool(args.stage + "-train", CFG["seed"] + step, cfg["pool"], cfg["refresh"])
    val_inputs, val_targets = upsampler_data.fixed_set(args.stage + "-train", CFG["seed"] - 1, 48)
    start = time.time()
    last_ckpt = start
    avg = {}
    first_step = step
    model.train()
    while time.time() - start < minutes * 60:
        lr = peak_lr * min(1.0, (step - first_step + 1) / 100)
        if args.anneal:
            lr *= 0.55 + 0.45 * math.cos(math.pi * min(1.0, (time.time() - start) / (minutes * 60)))
        for group in opt.param_groups:
            group["lr"] = lr
        inputs, targets = pool.batch(cfg["batch"])
        loss = weighted_l1(model(inputs), targets, cfg["edgeWeight"])
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        step += 1
        avg["loss"] = 0.98 * avg.get("loss", loss.item()) + 0.02 * loss.item()
        if step % 25 == 0:
            now = time.time()
            line = f"{args.stage} step {step} min {(elapsed + now - start) / 60:.1f} loss {avg['loss']:.4f}"
            if step % 200 == 0:
                line += " " + " ".join(f"{k} {v:.4f}" for k, v in evaluate(model, val_inputs, val_targets).items())
            print(line, flush=True)
            if now - last_ckpt > CFG["checkpointEveryMinutes"] * 60:
                save(args.stage, model, opt, step, elapsed + now - start)
                last_ckpt = now
    save(args.stage, model, opt, step, elapsed + time.time() - start)
    print(f"done {args.stage}: step {step}, {(elapsed + time.time() - start) / 60:.1f} min "
          + " ".join(f"{k} {v:.4f}" for k, v in evaluate(model, val_inputs, val_targets).items()), flush=True)


if __name__ == "__main__":
    main()
