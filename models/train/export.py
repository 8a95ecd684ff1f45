#!/usr/bin/python3
"""Exports the trained checkpoints to the bundle models/shapes-v1/ (ONNX opset 17, dynamic batch) with manifest.json,
and writes the benchmark's two evaluation sets that bench/shapes-eval.ts reads: models/train/eval_set.json (the DEV set:
the items every choice up to 1.5.0 was scored on, and the set for choices from now on) and models/train/test_set.json
(the TEST set: new seeds and caption templates that no training caption uses, test_captions.py; the model card's
headline).

  /usr/bin/python3 models/train/export.py --version V [--decoder-guidance G] [--prior-guidance G] [--steps N] [--sampler ddpm|ddim] [--out DIR]
  /usr/bin/python3 models/train/export.py --eval-set-only      # both sets, no ONNX file touched
  /usr/bin/python3 models/train/export.py --variant sketcher-alone|sketcher-zeroed|sketch-head-zeroed|sketch-paths-zeroed --out DIR [--from DIR]

--variant writes an ablation bundle for the benchmark (the model card's "what carries the score"): a copy of a bundle
(default models/shapes-v1) whose decoder.onnx has the same inputs and outputs and the same weights, changed only as
named (see VARIANTS).
"""
import argparse
import base64
import hashlib
import io
import json
import os
import shutil
import sys

import numpy as np
import torch

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import world  # noqa: E402
from nets import CLIP_MEAN, CLIP_STD  # noqa: E402
from train import CFG, D, H, L, PRIOR_CLIP_SAMPLE, has_state, load_clip, load_decoder, load_prior  # noqa: E402
from test_captions import TEST_TEMPLATES, test_caption  # noqa: E402

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


DEV_SEEDS = (424242, 434343)  # eval_set.json: every item as it was up to 1.5.0
TEST_SEED = 271828  # test_set.json: new scenes and sampling seeds


def full_caption(a, rng):
    """A training-template caption naming every attribute (world.caption, full): the dev set's captions."""
    return world.caption(a, rng, full=True)[0]


def prompt_items(rng, counts, caption):
    prompts = []
    for split, n in counts:
        for i in range(n):
            a = placed_attrs(rng, held_out_only=split == "held-out")
            text = caption(a, rng)
            prompts.append({"split": split, "prompt": text, "seed": int(rng.integers(1, 2**31)),
                            **{k: a[k] for k in ["shape", "colour", "bg", "size", "position"]}})
    return prompts


def edit_items(rng, n, caption):
    edits = []
    for i in range(n):
        a = placed_attrs(rng)
        img = world.render(a, rng)
        new = dict(a)
        while new["colour"] in (a["colour"], a["bg"]) or (new["shape"], new["colour"]) in world.HELD_OUT:
            new["colour"] = world.COLOURS[rng.integers(len(world.COLOURS))]
        text = caption(new, rng)
        m = int(np.ceil(a["r"] * 1.25)) + 2  # repaint a box around the object
        box = [max(0, int(a["cx"]) - m), max(0, int(a["cy"]) - m), min(64, int(a["cx"]) + m + 1), min(64, int(a["cy"]) + m + 1)]
        edits.append({"png": png_b64(img), "prompt": text, "colour": new["colour"], "bg": a["bg"], "box": box,
                      "seed": int(rng.integers(1, 2**31))})
    return edits


def retrieval_items(rng, n, caption):
    retrieval = []
    for i in range(n):
        a = placed_attrs(rng)
        img = world.render(a, rng)
        retrieval.append({"png": png_b64(img), "prompt": caption(a, rng)})
    return retrieval


def world_part():
    """The procedural checker's knowledge of the world (palette, anchors, held-out pairs)."""
    return {"palette": world.PALETTE, "shapes": world.SHAPES, "positions": world.POSITIONS, "heldOut": sorted(world.HELD_OUT)}


def checker_templates():
    """Silhouettes for the checker: each shape rendered at several sizes (64x64 0/1 masks)."""
    return {s: [m.astype(int).tolist() for m in masks] for s, masks in world.templates().items()}


def dev_set():
    """The DEV set (eval_set.json), byte for byte the evaluation set every result up to 1.5.0 was measured on:
    prompts (seen / held-out (shape, colour) pairs), variation sources, edit cases, retrieval pairs, all captioned with
    the training templates, and the checker's knowledge of the world."""
    rng = np.random.default_rng(DEV_SEEDS[0])
    out = world_part()
    out["prompts"] = prompt_items(rng, [("seen", 100), ("held-out", 60)], full_caption)
    out["variations"] = variation_sources(rng, [("seen", 40), ("held-out", 20)])
    out["edits"] = edit_items(rng, 40, full_caption)
    out["retrieval"] = retrieval_items(rng, 100, full_caption)
    # 40 seen sources left a 2.5-point step between results; the extra ones come from a generator of their own, so
    # that every item above stays as it was (`shapes-eval --limit 40` still gives the first set)
    out["variations"] += variation_sources(np.random.default_rng(DEV_SEEDS[1]), [("seen", 60), ("held-out", 20)])
    out["templates"] = checker_templates()
    return out


def test_set():
    """The TEST set (test_set.json): the dev set's kinds and counts of items, from a seed of its own (new scenes, new
    sampling seeds), captioned with test_captions.TEST_TEMPLATES (no training template; only words that occur in
    training captions; each caption checked: no [UNK], at most L tokens, not a caption training could write)."""
    rng = np.random.default_rng(TEST_SEED)
    out = {"name": "test", "seed": TEST_SEED, "captionTemplates": TEST_TEMPLATES, **world_part()}
    out["prompts"] = prompt_items(rng, [("seen", 100), ("held-out", 60)], test_caption)
    out["variations"] = variation_sources(rng, [("seen", 100), ("held-out", 40)])
    out["edits"] = edit_items(rng, 40, test_caption)
    out["retrieval"] = retrieval_items(rng, 100, test_caption)
    out["templates"] = checker_templates()
    return out


def eval_set():
    """Writes both sets: eval_set.json (dev) and test_set.json (test)."""
    for name, build in [("eval_set.json", dev_set), ("test_set.json", test_set)]:
        with open(os.path.join(HERE, name), "w") as f:
            json.dump(build(), f)


# The ablation bundles: decoder.onnx keeps its inputs, outputs and weights, changed only where named here.
VARIANTS = {
    # out_sample = the sketcher's 64 px drawing (the pixel-shuffle of the [n,12,32,32] map the decoder's sketcher_in
    # convolution reads), whatever x_t and the timestep: the UNet is cut out of the graph. The DDPM sampler's last step
    # returns its (clamped) x0 prediction, so at decoder guidance 1 (this bundle's default) the image the pipeline
    # returns is the drawing itself; at guidance g it would be d(0) + g (d(e) - d(0)).
    "sketcher-alone": None,
    # the sketcher's drawing, added at the 32 px level (sketcher_in: a 3x3 convolution of the drawing), zeroed
    # (weight and bias), so it adds exactly 0: what the outside review called "sketcher_in zeroed"
    "sketcher-zeroed": ["sketcher_in"],
    # the 16 px sketch head's map, added at the 16 px level (sketch_in: a 1x1 convolution), zeroed
    "sketch-head-zeroed": ["sketch_in"],
    # both: no spatial map from the embedding reaches the UNet; only its FiLM conditioning reads the embedding
    "sketch-paths-zeroed": ["sketcher_in", "sketch_in"],
}


def variant_decoder(src, dst, variant):
    """Writes decoder.onnx of an ablation bundle (VARIANTS) made from the ONNX file src (the shipped weights: the
    committed snapshots are fp16 copies, so a re-export from them would not be the decoder the card measures)."""
    import onnx
    from onnx import helper, numpy_helper

    model = onnx.load(src)
    g = model.graph
    inits = {t.name: t for t in g.initializer}
    convs = {prefix: [n for n in g.node if n.op_type == "Conv" and prefix + ".weight" in n.input]
             for prefix in ("sketcher_in", "sketch_in")}
    assert all(len(c) == 1 for c in convs.values()), "expected one sketcher_in and one sketch_in convolution"
    if VARIANTS[variant] is not None:
        for prefix in VARIANTS[variant]:
            for name in (prefix + ".weight", prefix + ".bias"):
                users = [n for n in g.node if name in n.input]
                assert len(users) == 1 and users[0] is convs[prefix][0], f"{name} is used elsewhere"
                arr = numpy_helper.to_array(inits[name])
                inits[name].CopyFrom(numpy_helper.from_array(np.zeros_like(arr), name))
    else:
        out_name = g.output[0].name
        last = [n for n in g.node if out_name in n.output]
        assert len(last) == 1 and last[0].op_type == "DepthToSpace", "out_sample should come from a pixel shuffle"
        mode = next(helper.get_attribute_value(a) for a in last[0].attribute if a.name == "mode")
        drawn = convs["sketcher_in"][0].input[0]  # the sketcher's pixel-unshuffled drawing [n,12,32,32]
        g.node.remove(last[0])
        g.node.append(helper.make_node("DepthToSpace", [drawn], [out_name], name="/sketcher_alone/DepthToSpace",
                                       blocksize=2, mode=mode.decode() if isinstance(mode, bytes) else mode))
        # keep only what the new output needs (the graph's inputs stay, sample and timestep unused)
        needed, keep = {out_name}, []
        for n in reversed(list(g.node)):
            if any(o in needed for o in n.output):
                keep.append(n)
                needed.update(n.input)
        keep.reverse()
        del g.node[:]
        g.node.extend(keep)
        used = [t for t in g.initializer if t.name in needed]
        del g.initializer[:]
        g.initializer.extend(used)
        vi = [v for v in g.value_info if v.name in needed]
        del g.value_info[:]
        g.value_info.extend(vi)
    onnx.checker.check_model(model)
    onnx.save(model, dst)


def export_variant(variant, src_dir, out_dir):
    if os.path.realpath(out_dir) in (os.path.realpath(src_dir), os.path.realpath(OUT)):
        raise SystemExit(f"--variant writes a trial bundle: --out must not be {out_dir}")
    with open(os.path.join(src_dir, "manifest.json")) as f:
        manifest = json.load(f)
    os.makedirs(out_dir, exist_ok=True)
    for name in manifest["files"]:
        if name != manifest["decoder"]["model"]:
            shutil.copyfile(os.path.join(src_dir, name), os.path.join(out_dir, name))
    dec = manifest["decoder"]["model"]
    variant_decoder(os.path.join(src_dir, dec), os.path.join(out_dir, dec), variant)
    manifest["version"] = f"{manifest['version']}+{variant}"
    manifest["description"] = (f"ABLATION of {manifest['name']} ({variant}, models/train/export.py --variant): not for "
                               "serving. " + manifest["description"])
    if variant == "sketcher-alone":
        manifest["decoder"]["defaultGuidance"] = 1.0  # the final image is then the drawing itself
    manifest["files"] = {name: sha256(os.path.join(out_dir, name)) for name in manifest["files"]}
    with open(os.path.join(out_dir, "manifest.json"), "w") as f:
        json.dump(manifest, f, indent=2)
        f.write("\n")
    print("wrote", variant, "bundle", out_dir, "decoder sha256", manifest["files"][dec])


def main():
    ap = argparse.ArgumentParser()
    ex = CFG["export"]
    ap.add_argument("--prior-guidance", type=float, default=ex["priorGuidance"])
    ap.add_argument("--decoder-guidance", type=float, default=ex["decoderGuidance"])
    ap.add_argument("--prior-steps", type=int, default=ex["priorSteps"])
    ap.add_argument("--steps", type=int, default=ex["decoderSteps"])
    ap.add_argument("--sampler", default=ex["sampler"])
    ap.add_argument("--version", help="the bundle's version (needed for an ONNX export; shapes-v1 is at 1.5.0)")
    ap.add_argument("--eval-set-only", action="store_true", help="write eval_set.json (dev) and test_set.json only")
    ap.add_argument("--out", default=OUT, help="bundle directory (default models/shapes-v1; another one for a trial export)")
    ap.add_argument("--variant", choices=sorted(VARIANTS), help="write an ablation bundle made from --from to --out")
    ap.add_argument("--from", dest="src", default=OUT, help="--variant: the bundle to start from (default models/shapes-v1)")
    args = ap.parse_args()
    if args.variant:
        export_variant(args.variant, args.src, args.out)
        return
    if not args.eval_set_only and not args.version:
        ap.error("--version is needed for an ONNX export (the manifest's version; shapes-v1 is at 1.5.0)")
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
