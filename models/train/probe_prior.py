#!/usr/bin/python3
"""How much of each prompt the prior's embedding carries: it samples the prior for the benchmark's prompts
(eval_set.json, seen and held-out) the way the TypeScript side does (DDPM, respaced steps, guidance on x0, clamp), and
reads the samples with CLIP's attribute heads and with the decoder's sketcher (its drawing read by probe_sketch's copy of
the benchmark checker). The same readings of the image embeddings of scenes drawn from the same attributes give the
ceiling: a gap between the two is the prior's, not CLIP's.

  /usr/bin/python3 models/train/probe_prior.py [--steps N] [--guidance G] [--set dev|test] [--by-template]

--set test reads test_set.json (the benchmark's test set, new caption templates) instead of eval_set.json (dev);
--by-template adds the prior's readings per caption template (test: test_captions.TEST_TEMPLATES; dev: the training
templates), seen and held-out prompts together. A diagnosis, not a place to make choices: make those on dev.
"""
import argparse
import json
import os
import re

import numpy as np
import torch
import torch.nn.functional as F

import train
import world
from probe_sketch import check, draw
from test_captions import TEST_TEMPLATES, TRAIN_TEMPLATES, words

HERE = os.path.dirname(os.path.abspath(__file__))


def respaced(n, T=train.T):
    return [int(v) for v in np.round(np.linspace(0, T - 1, n))[::-1]]


def sample_prior(clip, prior, ids, steps, guidance, gen, clip_sample=train.PRIOR_CLIP_SAMPLE):
    """[n,D] normalised embeddings for token ids [n,L] (row layout as text-to-embedding.ts: [uncond; cond])."""
    n = len(ids)
    with torch.no_grad():
        all_ids = torch.cat([torch.zeros(1, ids.shape[1], dtype=ids.dtype), ids])
        txt, hidden = clip.text(all_ids)
        proj = torch.cat([txt[:1].expand(n, -1), txt[1:]])
        ctx = torch.cat([hidden[:1].expand(n, -1, -1), hidden[1:]])
        mask = torch.cat([(all_ids[:1] != 0).expand(n, -1), ids != 0])
        x = torch.randn(n, train.D, generator=gen)
        ts = respaced(steps)
        for k, t in enumerate(ts):
            out = prior(torch.cat([x, x]), torch.full((2 * n,), t), proj, ctx, mask)
            x0 = (out[:n] + guidance * (out[n:] - out[:n])).clamp(-clip_sample, clip_sample)
            a_t = train.ABAR[t]
            a_s = train.ABAR[ts[k + 1]] if k + 1 < len(ts) else torch.tensor(1.0)
            beta = 1 - a_t / a_s
            x = a_s.sqrt() * beta / (1 - a_t) * x0 + (1 - beta).sqrt() * (1 - a_s) / (1 - a_t) * x
            if k + 1 < len(ts):
                x = x + (beta * (1 - a_s) / (1 - a_t)).clamp(min=1e-20).sqrt() * torch.randn(x.shape, generator=gen)
    return x


def sketched_shape(sketcher, emb, attrs):
    """% of embeddings from which the sketcher draws a silhouette the checker reads as the asked shape."""
    return round(100 * np.mean([check(img)[2] == a["shape"] for img, a in zip(draw(sketcher, emb), attrs)]), 1)


def template_of(text, templates):
    """Index of the one template (of captions naming every attribute) that matches `text` word for word, each
    placeholder standing for its words; None if none or several match."""
    def pattern(template):
        parts = []
        for tok in re.findall(r"\{\w+\}|\w+|[^\w\s]+", template):
            if tok.startswith("{"):  # obj: size colour shape; pos: 1-5 words; the others: one word
                parts.append({"{obj}": r"\S+ \S+ \S+", "{pos}": r"\S+(?: \S+){0,4}", "{pos_lead}": r"\S+(?: \S+){0,4}"}.get(tok, r"\S+"))
            else:
                parts.append("an?" if tok == "a" else re.escape(tok))
        return " ".join(parts)
    text = " ".join(words(text))
    found = [i for i, t in enumerate(templates) if re.fullmatch(pattern(t), text)]
    return found[0] if len(found) == 1 else None


def main():
    ap = argparse.ArgumentParser()
    ex = world.CONFIG["export"]
    ap.add_argument("--steps", type=int, default=ex["priorSteps"])
    ap.add_argument("--guidance", type=float, default=ex["priorGuidance"])
    ap.add_argument("--set", choices=["dev", "test"], default="dev")
    ap.add_argument("--by-template", action="store_true")
    args = ap.parse_args()
    torch.set_num_threads(1)
    clip = train.load_clip()
    prior, mean, std = train.load_prior()
    sketcher = train.load_decoder().sketcher.eval()
    prompts = json.load(open(os.path.join(HERE, {"dev": "eval_set.json", "test": "test_set.json"}[args.set])))["prompts"]
    rng = np.random.default_rng(3)
    for split in ("seen", "held-out"):
        items = [p for p in prompts if p["split"] == split]
        ids = torch.from_numpy(world.tokenize([p["prompt"] for p in items]))
        emb = sample_prior(clip, prior, ids, args.steps, args.guidance, torch.Generator().manual_seed(11)) * std + mean
        scenes = [dict(p) for p in items]  # render() adds the drawn centre, which the position head is read against
        with torch.no_grad():
            truth = clip.image(train.clip_pixels(np.stack([world.render(a, rng) for a in scenes])))
            print(f"{split:8} prior  {train.head_accuracy(clip, emb, scenes)}  sketcher shape {sketched_shape(sketcher, emb, scenes)}")
            print(f"{split:8} images {train.head_accuracy(clip, truth, scenes)}  sketcher shape {sketched_shape(sketcher, truth, scenes)}"
                  f"  cos(prior, image) "
                  f"{F.cosine_similarity(emb, truth).mean().item():.3f}")
    if args.by_template:
        templates = TEST_TEMPLATES if args.set == "test" else TRAIN_TEMPLATES
        ids = torch.from_numpy(world.tokenize([p["prompt"] for p in prompts]))
        emb = sample_prior(clip, prior, ids, args.steps, args.guidance, torch.Generator().manual_seed(11)) * std + mean
        scenes = [dict(p) for p in prompts]
        for p in scenes:
            world.render(p, rng)
        which = [template_of(p["prompt"], templates) for p in prompts]
        for i, t in [(i, t) for i, t in enumerate(templates)] + [(None, "(no single template)")]:
            rows = [k for k, w in enumerate(which) if w == i]
            if rows:
                with torch.no_grad():
                    heads = train.head_accuracy(clip, emb[rows], [scenes[k] for k in rows])
                print(f"{len(rows):3} {t!r:55} {heads}")


if __name__ == "__main__":
    main()
