"""Caption templates of the benchmark's TEST set (models/train/test_set.json, written by export.py), kept apart from
world.py's training captions: no template here is one of world.caption()'s, and every caption is checked against all
the captions those could write for the same scene.

Only words that occur in training captions are used (the tokenizer's vocabulary also holds "and" and "of", which no
training caption has: their embeddings were never trained, so a template with them would test untrained tokens rather
than unseen word orders). Every caption names every attribute (size, colour, shape, position, background), as the
benchmark's prompts do; the templates move the parts around (position first, background first, size after the shape,
"the" / "one" / "with" in new places).

  /usr/bin/python3 models/train/test_captions.py     # prints one caption per template, checks a few thousand
"""
import itertools
import re

import numpy as np

import world

# {obj} = size colour shape, as in training; {col} {shp} {size} apart for the templates that reorder them
TEST_TEMPLATES = [
    "{pos_lead} , a {obj} on a {bg} background",
    "on a {bg} background , a {obj} {pos}",
    "a {bg} background with one {obj} {pos}",
    "the {obj} {pos} on the {bg} background",
    "a {obj} with a {bg} background {pos}",
    "{pos_lead} on {bg} , one {obj}",
    "a {col} {shp} {pos} , {size} , on a {bg} background",
    "{bg} background , {pos_lead} a {obj}",
]

# the training templates of world.caption() for captions that name every attribute (a caption with size, position
# and background), to prove the test captions new
TRAIN_TEMPLATES = ["a {obj} {pos}, {bg} background", "a {obj} {pos} on {bg}", "{bg} background with a {obj} {pos}",
                   "a {obj} on {bg} {pos}", "a {obj} {pos} on a {bg} background"]

_TOKEN = re.compile(r"\w+|[^\w\s]+")


def words(text):
    """The tokenizer's pre-tokenisation (lowercase, words and punctuation apart), as world.tokenize."""
    return _TOKEN.findall(text.lower())


def _an(text):
    """'a' before a vowel-initial word becomes 'an' wherever it stands (training does this at the start only)."""
    return re.sub(r"\ba ([aeiou])", r"an \1", text)


def test_caption(attrs, rng):
    """A TEST-set caption naming every attribute of the scene (attrs with a position), from TEST_TEMPLATES."""
    size = world.pick(rng, world.SIZE_WORDS[attrs["size"]])
    col = world.pick(rng, world.COLOUR_WORDS[attrs["colour"]])
    shp = world.pick(rng, world.SHAPE_WORDS[attrs["shape"]])
    bg = world.pick(rng, world.COLOUR_WORDS[attrs["bg"]])
    phrases = world.POS_WORDS[attrs["position"]]
    pos = world.pick(rng, phrases)
    # a caption that starts with the position takes a phrase that starts with a preposition ("in the middle", not "centred")
    pos_lead = world.pick(rng, [p for p in phrases if p.split()[0] in ("in", "at")])
    template = world.pick(rng, TEST_TEMPLATES)
    text = template.format(obj=f"{size} {col} {shp}", col=col, shp=shp, size=size, pos=pos, pos_lead=pos_lead, bg=bg)
    text = _an(text)
    check_caption(text, attrs)
    return text


def training_captions(attrs):
    """Every caption world.caption(attrs, rng, full=True) can write for this scene (all synonyms, all templates)."""
    out = set()
    for size, col, shp, pos, bg, template in itertools.product(
            world.SIZE_WORDS[attrs["size"]], world.COLOUR_WORDS[attrs["colour"]], world.SHAPE_WORDS[attrs["shape"]],
            world.POS_WORDS[attrs["position"]], world.COLOUR_WORDS[attrs["bg"]], TRAIN_TEMPLATES):
        text = template.format(obj=f"{size} {col} {shp}", pos=pos, bg=bg)
        out.add(re.sub(r"^a ([aeiou])", r"an \1", text))
    return out


def check_caption(text, attrs=None):
    """Raises unless the caption tokenises without [UNK] within the tokenizer's L tokens and (given the scene) is not a
    caption that training could have written for it."""
    toks = words(text)
    unknown = [t for t in toks if t not in world.VOCAB]
    if unknown:
        raise ValueError(f"{text!r}: words outside the vocabulary {unknown}")
    if len(toks) > world.L:
        raise ValueError(f"{text!r}: {len(toks)} tokens, more than L = {world.L}")
    if attrs is not None and " ".join(toks) in {" ".join(words(c)) for c in training_captions(attrs)}:
        raise ValueError(f"{text!r} is a training caption")
    ids = world.tokenize([text])[0]
    if (ids == world.VOCAB["[UNK]"]).any():
        raise ValueError(f"{text!r}: [UNK] after tokenising")


if __name__ == "__main__":
    rng = np.random.default_rng(0)
    longest = 0
    for i in range(4000):
        a = world.sample_attrs(rng, allow_held_out=True)
        a["position"] = a["position"] or world.POSITION_NAMES[rng.integers(5)]
        text = test_caption(a, rng)
        longest = max(longest, len(words(text)))
        if i < 8:
            print(text)
    print("4000 captions checked; longest", longest, "tokens of", world.L)
