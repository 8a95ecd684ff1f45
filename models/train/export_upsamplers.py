#!/usr/bin/python3
"""Exports the trained shapes upsamplers (train_upsamplers.py) to an upscaler bundle, by default models/shapes-upsamplers/:
up256.onnx (64 -> 256) and up1024.onnx (256 -> 1024), ONNX opset 17 with dynamic batch and sides, and manifest.json
(docs/bundle-format.md, the `upscaler` section with a model per input side).

  /usr/bin/python3 models/train/export_upsamplers.py [--version 1.0.0] [--out DIR] [--back-projection N]
"""
import argparse
import hashlib
import json
import os
import sys

import torch

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from train import load_state  # noqa: E402
from train_upsamplers import load_weights, make_upsampler  # noqa: E402

OPSET = 17
MODELS = {"64": ("up256", "up256.onnx"), "256": ("up1024", "up1024.onnx")}


def sha256(path):
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--version", default="1.0.0")
    ap.add_argument("--out", default=os.path.join(HERE, "..", "shapes-upsamplers"))
    ap.add_argument("--back-projection", type=int, default=0,
                    help="back-projection iterations the bundle asks for (the worker's default for this bundle)")
    args = ap.parse_args()
    os.makedirs(args.out, exist_ok=True)
    steps = {}
    for side, (stage, file) in MODELS.items():
        model = make_upsampler(stage)
        ck = load_state(stage)
        load_weights(model, ck["model"])
        model.eval()
        steps[stage] = {"step": int(ck["step"]), "minutes": round(float(ck["elapsed"]) / 60, 1)}
        n = int(side)
        with torch.no_grad():
            torch.onnx.export(model, (torch.rand(1, 3, n, n),), os.path.join(args.out, file), input_names=["image"],
                              output_names=["upscaled"], opset_version=OPSET, do_constant_folding=True,
                              dynamic_axes={"image": {0: "n", 2: "h", 3: "w"}, "upscaled": {0: "n", 2: "oh", 3: "ow"}})
    files = [file for _, file in MODELS.values()]
    manifest = {
        "name": "shapes-upsamplers",
        "version": args.version,
        "description": "In-domain x4 upsamplers of the shapes world (64 -> 256, 256 -> 1024), trained on its analytic "
                       "anti-aliased renders with the paper's input corruptions by models/train/train_upsamplers.py "
                       "(see models/shapes-v1/MODEL_CARD.md).",
        "files": {file: sha256(os.path.join(args.out, file)) for file in files},
        "upscaler": {
            "model": MODELS["256"][1],
            "scale": 4,
            "inputRange": [0, 1],
            "bySide": {side: file for side, (_, file) in MODELS.items()},
            "decoders": ["shapes-v1"],
            "tileSize": 1024,
            "backProjection": args.back_projection,
        },
        "training": steps,
    }
    with open(os.path.join(args.out, "manifest.json"), "w") as f:
        json.dump(manifest, f, indent=2)
        f.write("\n")
    print(json.dumps(manifest, indent=2))


if __name__ == "__main__":
    main()
