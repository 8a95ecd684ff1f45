#!/usr/bin/python3
"""Exports the trained checkpoints to the bundle models/shapes-v1/ (ONNX opset 17, dynamic batch) with manifest.json,
and writes the evaluation set models/train/eval_set.json that bench/shapes-eval.ts reads.

  /usr/bin/python3 models/train/export.py [--decoder-guidance G] [--prior-guidance G] [--steps N] [--sampler ddpm|ddim]
  /usr/bin/python3 models/train/export.py --eval-set-only
"""
import argparse
import base64
import hashlib
import io
import json
import os
import sys

import numpy as np
import torch

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import world  # noqa: E402
from nets import CLIP_MEAN, CLIP_STD  # noqa: E402
from train import CFG, D, H, L, PRIOR_CLIP_SAMPLE, has_state, load_clip, load_decoder, load_prior  # noqa: E402

OUT = os.path.join(HERE, "..", "shapes-v1")
OPSET = 17


def export(module, args, path, inputs, outputs):
    module.eval()
    with torch.no_grad():
        torch.onnx.export(module, args, path, input_names=inputs, output_names=outputs,
                          dynamic_axes={name: {0: "n"} for name in inputs + outputs}, opset_version=OPSET,
                          do_constant_folding=True)


def sha256(path):
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


def png_b64(img):
    from PIL import Image
    buf = io.BytesIO()
    Image.fromarray(img).save(buf, format="PNG")
    return base64.b64encode(buf.getvalue()).decode()


def placed_attrs(rng, held_out_only=False):
    """Attributes of a scene whose object has a named position (captions then name every attribute)."""
    a = world.sample_attrs(rng, held_out_only=held_out_only)
    if a["position"] is None:
        a["position"] = world.POSITION_NAMES[rng.integers(5)]
    return a


def variation_sources(rng, counts):
    items = []
    for split, n in counts:
        for i in range(n):
            a = world.sample_attrs(rng, held_out_only=split == "held-out")
            img = world.render(a, rng)
            items.append({"split": split, "png": png_b64(img), "seed": int(rng.integers(1, 2**31)),
                          **{k: a[k] for k in ["shape", "colour", "bg", "size", "position"]}})
    return items


def eval_set():
    """Prompts (seen / held-out (shape, colour) pairs), variation sources, edit cases, retrieval pairs, and the
    procedural checker's knowledge of the world (palette, anchors, shape silhouettes)."""
    rng = np.random.default_rng(424242)
    out = {"palette": world.PALETTE, "shapes": world.SHAPES, "positions": world.POSITIONS, "heldOut": sorted(world.HELD_OUT)}
    prompts = []
    for split, n in [("seen", 100), ("held-out", 60)]:
        for i in range(n):
            a = placed_attrs(rng, held_out_only=split == "held-out")
            text, _ = world.caption(a, rng, full=True)
            prompts.append({"split": split, "prompt": text, "seed": int(rng.integers(1, 2**31)),
                            **{k: a[k] for k in ["shape", "colour", "bg", "size", "position"]}})
    out["prompts"] = prompts
    out["variations"] = variation_sources(rng, [("seen", 40), ("held-out", 20)])
    edits = []
    for i in range(40):
        a = placed_attrs(rng)
        img = world.render(a, rng)
        new = dict(a)
        while new["colour"] in (a["colour"], a["bg"]) or (new["shape"], new["colour"]) in world.HELD_OUT:
            new["colour"] = world.COLOURS[rng.integers(len(world.COLOURS))]
        text, _ = world.caption(new, rng, full=True)
        m = int(np.ceil(a["r"] * 1.25)) + 2  # repaint a box around the object
        box = [max(0, int(a["cx"]) - m), max(0, int(a["cy"]) - m), min(64, int(a["cx"]) + m + 1), min(64, int(a["cy"]) + m + 1)]
        edits.append({"png": png_b64(img), "prompt": text, "colour": new["colour"], "bg": a["bg"], "box": box,
                      "seed": int(rng.integers(1, 2**31))})
    out["edits"] = edits
    retrieval = []
    for i in range(100):
        a = placed_attrs(rng)
        img = world.render(a, rng)
        retrieval.append({"png": png_b64(img), "prompt": world.caption(a, rng, full=True)[0]})
    out["retrieval"] = retrieval
    # 40 seen sources left a 2.5-point step between results; the extra ones come from a generator of their own, so
    # that every item above stays as it was (`shapes-eval --limit 40` still gives the first set)
    out["variations"] += variation_sources(np.random.default_rng(434343), [("seen", 60), ("held-out", 20)])
    # silhouettes for the checker: each shape rendered at several sizes, cropped to its bounding box
    out["templates"] = {s: [m.astype(int).tolist() for m in masks] for s, masks in world.templates().items()}
    with open(os.path.join(HERE, "eval_set.json"), "w") as f:
        json.dump(out, f)


def main():
    ap = argparse.ArgumentParser()
    ex = CFG["export"]
    ap.add_argument("--prior-guidance", type=float, default=ex["priorGuidance"])
    ap.add_argument("--decoder-guidance", type=float, default=ex["decoderGuidance"])
    ap.add_argument("--prior-steps", type=int, default=ex["priorSteps"])
    ap.add_argument("--steps", type=int, default=ex["decoderSteps"])
    ap.add_argument("--sampler", default=ex["sampler"])
    ap.add_argument("--version", default="1.0.0")
    ap.add_argument("--eval-set-only", action="store_true")
    ap.add_argument("--out", default=OUT, help="bundle directory (default models/shapes-v1; another one for a trial export)")
    args = ap.parse_args()
    eval_set()
    if args.eval_set_only:
        return
    os.makedirs(args.out, exist_ok=True)
    n = 2
    clip = load_clip()
    with open(os.path.join(args.out, "tokenizer.json"), "w") as f:
        json.dump(world.tokenizer_json(), f, indent=1)
        f.write("\n")
    export(clip.text, (torch.zeros(n, L, dtype=torch.int64),), os.path.join(args.out, "text_encoder.onnx"),
           ["input_ids"], ["text_embeds", "last_hidden_state"])
    export(clip.image, (torch.zeros(n, 3, 64, 64),), os.path.join(args.out, "image_encoder.onnx"), ["pixel_values"], ["image_embeds"])
    files = ["tokenizer.json", "text_encoder.onnx", "image_encoder.onnx"]
    manifest = {
        "name": "shapes-v1", "version": args.version,
        "description": "unCLIP for the 64 px shapes world, trained on 2 CPU cores by models/train (see MODEL_CARD.md).",
        "files": {},
        "tokenizer": {"file": "tokenizer.json", "maxLength": L, "padId": world.VOCAB["[PAD]"]},
        "clip": {"textEncoder": "text_encoder.onnx", "imageEncoder": "image_encoder.onnx", "embedDim": D, "hiddenDim": H,
                 "imageSize": 64, "imageMean": CLIP_MEAN, "imageStd": CLIP_STD},
    }
    if has_state("prior"):
        prior, mean, std = load_prior()
        export(prior, (torch.zeros(n, D), torch.zeros(n, dtype=torch.int64), torch.zeros(n, D), torch.zeros(n, L, H),
                       torch.ones(n, L, dtype=torch.bool)), os.path.join(args.out, "prior.onnx"),
               ["hidden_states", "timestep", "proj_embedding", "encoder_hidden_states", "attention_mask"],
               ["predicted_image_embedding"])
        with open(os.path.join(args.out, "embedding_stats.json"), "w") as f:
            json.dump({"mean": [round(float(x), 7) for x in mean], "std": [round(float(x), 7) for x in std]}, f)
            f.write("\n")
        files += ["prior.onnx", "embedding_stats.json"]
        manifest["prior"] = {"model": "prior.onnx", "embeddingStats": "embedding_stats.json",
                             "scheduler": {"schedule": "squaredcos_cap_v2", "trainTimesteps": 1000, "prediction": "sample",
                                           "variance": "fixed_small_log", "clipSample": PRIOR_CLIP_SAMPLE},
                             "defaultSteps": args.prior_steps, "defaultGuidance": args.prior_guidance, "defaultSampler": "ddpm"}
    if has_state("decoder"):
        export(load_decoder(), (torch.zeros(n, 7, 64, 64), torch.zeros(n, dtype=torch.int64), torch.zeros(n, D)),
               os.path.join(args.out, "decoder.onnx"), ["sample", "timestep", "image_embeds"], ["out_sample"])
        files.append("decoder.onnx")
        manifest["decoder"] = {"model": "decoder.onnx", "inChannels": 7, "outChannels": 3, "size": 64, "embedDim": D,
                               "scheduler": {"schedule": "squaredcos_cap_v2", "trainTimesteps": 1000, "prediction": "sample",
                                             "variance": "fixed_small_log", "clipSample": 1.0},
                               "defaultSteps": args.steps, "defaultGuidance": args.decoder_guidance,
                               "defaultSampler": args.sampler}
    manifest["files"] = {name: sha256(os.path.join(args.out, name)) for name in files}
    with open(os.path.join(args.out, "manifest.json"), "w") as f:
        json.dump(manifest, f, indent=2)
        f.write("\n")
    print("exported", files, sum(os.path.getsize(os.path.join(args.out, x)) for x in files) / 1e6, "MB")


if __name__ == "__main__":
    main()
