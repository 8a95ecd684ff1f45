#!/usr/bin/python3
"""Writes models/tiny-random: a bundle with random (seeded) weights and tiny sizes that follows the tensor contract of
docs/tensor-contract.md exactly. It exists for tests and for running the farm end to end without trained models.

Run with Debian's interpreter (it has torch and onnx): /usr/bin/python3 models/tools/make_tiny_bundle.py [out_dir]
The output is byte-for-byte reproducible with the same torch version.
"""
import hashlib
import json
import math
import os
import sys

import torch
from torch import nn
import torch.nn.functional as F

OPSET = 17
L, D, H = 16, 32, 32  # token sequence length, embedding dim, text hidden dim
IMAGE_SIZE = 64
DECODER_SIZE = 64
CLIP_MEAN = [0.48145466, 0.4578275, 0.40821073]
CLIP_STD = [0.26862954, 0.26130258, 0.27577711]

SPECIAL = ["[PAD]", "[UNK]"]
WORDS = (
    "a an the and with on in of at to is small large big tiny huge "
    "red orange yellow green blue purple pink brown black white gray grey cyan magenta "
    "circle square triangle star ring cross blob diamond heart hexagon rectangle oval dot "
    "top bottom left right center centre middle upper lower corner background"
).split()
VOCAB = {token: i for i, token in enumerate(SPECIAL + WORDS)}


def timestep_embedding(t: torch.Tensor, dim: int) -> torch.Tensor:
    half = dim // 2
    freqs = torch.exp(-math.log(10000.0) * torch.arange(half, dtype=torch.float32) / half)
    args = t.to(torch.float32)[:, None] * freqs[None, :]
    return torch.cat([torch.cos(args), torch.sin(args)], dim=1)


def masked_mean(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean over the sequence of x [n,L,H] where mask [n,L] is set; an all-false mask gives zeros, not NaN."""
    m = mask.to(x.dtype).unsqueeze(-1)
    return (x * m).sum(dim=1) / m.sum(dim=1).clamp(min=1.0)


class TextEncoder(nn.Module):
    def __init__(self):
        super().__init__()
        self.embed = nn.Embedding(len(VOCAB), H)
        self.position = nn.Parameter(torch.randn(L, H) * 0.1)
        self.mix = nn.Linear(H, H)
        self.project = nn.Linear(H, D)

    def forward(self, input_ids):
        hidden = torch.tanh(self.mix(self.embed(input_ids) + self.position))
        text_embeds = self.project(masked_mean(hidden, input_ids != VOCAB["[PAD]"]))
        return text_embeds, hidden


class ImageEncoder(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 8, 4, stride=4)
        self.conv2 = nn.Conv2d(8, 16, 4, stride=4)
        self.project = nn.Linear(16, D)

    def forward(self, pixel_values):
        x = F.silu(self.conv2(F.silu(self.conv1(pixel_values))))
        return self.project(x.mean(dim=(2, 3)))


class Prior(nn.Module):
    def __init__(self):
        super().__init__()
        self.inp = nn.Linear(3 * D + H, 64)
        self.out = nn.Linear(64, D)

    def forward(self, hidden_states, timestep, proj_embedding, encoder_hidden_states, attention_mask):
        context = masked_mean(encoder_hidden_states, attention_mask)
        x = torch.cat([hidden_states, timestep_embedding(timestep, D), proj_embedding, context], dim=1)
        return self.out(F.silu(self.inp(x)))


class Decoder(nn.Module):
    """7 input channels (x_t, masked image, keep mask), 6 outputs (epsilon, learned-range variance in [-1, 1])."""

    def __init__(self):
        super().__init__()
        self.conv_in = nn.Conv2d(7, 16, 3, padding=1)
        self.cond = nn.Linear(2 * D, 16)
        self.conv_mid = nn.Conv2d(16, 16, 3, padding=1)
        self.conv_out = nn.Conv2d(16, 6, 3, padding=1)

    def forward(self, sample, timestep, image_embeds):
        cond = self.cond(torch.cat([timestep_embedding(timestep, D), image_embeds], dim=1))
        x = F.silu(self.conv_in(sample) + cond[:, :, None, None])
        x = self.conv_out(F.silu(self.conv_mid(x)))
        eps, v = x[:, :3], torch.tanh(x[:, 3:])
        return torch.cat([eps, v], dim=1)


class UpscalerX4(nn.Module):
    def __init__(self):
        super().__init__()
        self.residual = nn.Conv2d(3, 3, 3, padding=1)
        with torch.no_grad():
            self.residual.weight.mul_(0.05)
            self.residual.bias.zero_()

    def forward(self, image):
        up = F.interpolate(image, scale_factor=4.0, mode="nearest")
        return (up + 255.0 * self.residual(up / 255.0)).clamp(0.0, 255.0)


def export(module, args, path, input_names, output_names, dynamic_axes):
    module.eval()
    with torch.no_grad():
        torch.onnx.export(
            module,
            args,
            path,
            input_names=input_names,
            output_names=output_names,
            dynamic_axes=dynamic_axes,
            opset_version=OPSET,
            do_constant_folding=True,
        )


def tokenizer_json():
    return {
        "version": "1.0",
        "truncation": None,
        "padding": None,
        "added_tokens": [
            {"id": VOCAB[t], "content": t, "single_word": False, "lstrip": False, "rstrip": False, "normalized": False, "special": True}
            for t in SPECIAL
        ],
        "normalizer": {"type": "Lowercase"},
        "pre_tokenizer": {"type": "Whitespace"},
        "post_processor": None,
        "decoder": None,
        "model": {"type": "WordLevel", "vocab": VOCAB, "unk_token": "[UNK]"},
    }


def sha256(path):
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


def main():
    out = sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(__file__), "..", "tiny-random")
    os.makedirs(out, exist_ok=True)
    torch.manual_seed(20240611)
    n = 2  # the example batch; every batch dimension is exported as dynamic

    with open(os.path.join(out, "tokenizer.json"), "w") as f:
        json.dump(tokenizer_json(), f, indent=1)
        f.write("\n")

    export(TextEncoder(), (torch.zeros(n, L, dtype=torch.int64),), os.path.join(out, "text_encoder.onnx"),
           ["input_ids"], ["text_embeds", "last_hidden_state"],
           {"input_ids": {0: "n"}, "text_embeds": {0: "n"}, "last_hidden_state": {0: "n"}})
    export(ImageEncoder(), (torch.zeros(n, 3, IMAGE_SIZE, IMAGE_SIZE),), os.path.join(out, "image_encoder.onnx"),
           ["pixel_values"], ["image_embeds"], {"pixel_values": {0: "n"}, "image_embeds": {0: "n"}})
    export(Prior(),
           (torch.zeros(n, D), torch.zeros(n, dtype=torch.int64), torch.zeros(n, D), torch.zeros(n, L, H),
            torch.ones(n, L, dtype=torch.bool)),
           os.path.join(out, "prior.onnx"),
           ["hidden_states", "timestep", "proj_embedding", "encoder_hidden_states", "attention_mask"],
           ["predicted_image_embedding"],
           {name: {0: "n"} for name in ["hidden_states", "timestep", "proj_embedding", "encoder_hidden_states",
                                        "attention_mask", "predicted_image_embedding"]})
    export(Decoder(), (torch.zeros(n, 7, DECODER_SIZE, DECODER_SIZE), torch.zeros(n, dtype=torch.int64), torch.zeros(n, D)),
           os.path.join(out, "decoder.onnx"), ["sample", "timestep", "image_embeds"], ["out_sample"],
           {name: {0: "n"} for name in ["sample", "timestep", "image_embeds", "out_sample"]})
    export(UpscalerX4(), (torch.zeros(n, 3, 16, 16),), os.path.join(out, "upscaler_x4.onnx"), ["image"], ["upscaled"],
           {"image": {0: "n", 2: "h", 3: "w"}, "upscaled": {0: "n", 2: "h4", 3: "w4"}})

    stats = {"mean": [round(x, 6) for x in (torch.randn(D) * 0.1).tolist()],
             "std": [round(x, 6) for x in (0.5 + torch.rand(D)).tolist()]}
    with open(os.path.join(out, "embedding_stats.json"), "w") as f:
        json.dump(stats, f)
        f.write("\n")

    files = ["tokenizer.json", "text_encoder.onnx", "image_encoder.onnx", "prior.onnx", "embedding_stats.json",
             "decoder.onnx", "upscaler_x4.onnx"]
    manifest = {
        "name": "tiny-random",
        "version": "1.0.0",
        "description": "Random weights, contract-exact tiny shapes: for tests, not for pictures. Made by models/tools/make_tiny_bundle.py.",
        "files": {name: sha256(os.path.join(out, name)) for name in files},
        "tokenizer": {"file": "tokenizer.json", "maxLength": L, "padId": VOCAB["[PAD]"]},
        "clip": {"textEncoder": "text_encoder.onnx", "imageEncoder": "image_encoder.onnx", "embedDim": D, "hiddenDim": H,
                 "imageSize": IMAGE_SIZE, "imageMean": CLIP_MEAN, "imageStd": CLIP_STD},
        "prior": {"model": "prior.onnx", "embeddingStats": "embedding_stats.json",
                  "scheduler": {"schedule": "squaredcos_cap_v2", "trainTimesteps": 1000, "prediction": "sample",
                                "variance": "fixed_small_log", "clipSample": 10.0},
                  "defaultSteps": 25, "defaultGuidance": 4.0, "defaultSampler": "ddpm"},
        "decoder": {"model": "decoder.onnx", "inChannels": 7, "outChannels": 6, "size": DECODER_SIZE, "embedDim": D,
                    "scheduler": {"schedule": "squaredcos_cap_v2", "trainTimesteps": 1000, "prediction": "epsilon",
                                  "variance": "learned_range", "clipSample": 1.0},
                    "defaultSteps": 25, "defaultGuidance": 8.0, "defaultSampler": "ddpm"},
        "upscaler": {"model": "upscaler_x4.onnx", "scale": 4, "inputRange": [0, 255]},
    }
    with open(os.path.join(out, "manifest.json"), "w") as f:
        json.dump(manifest, f, indent=2)
        f.write("\n")


if __name__ == "__main__":
    main()
