"""The shapes-v1 networks: CLIP (text transformer + CNN image encoder), diffusion prior (MLP), decoder (small UNet
with 7-channel inpainting input, x0 prediction). Input/output names follow docs/tensor-contract.md."""
import math

import torch
from torch import nn
import torch.nn.functional as F

CLIP_MEAN = [0.48145466, 0.4578275, 0.40821073]
CLIP_STD = [0.26862954, 0.26130258, 0.27577711]


def timestep_embedding(t, dim):
    half = dim // 2
    freqs = torch.exp(-math.log(10000.0) * torch.arange(half, dtype=torch.float32) / half)
    args = t.to(torch.float32)[:, None] * freqs[None, :]
    return torch.cat([torch.cos(args), torch.sin(args)], dim=1)


def masked_mean(x, mask):
    m = mask.to(x.dtype).unsqueeze(-1)
    return (x * m).sum(dim=1) / m.sum(dim=1).clamp(min=1.0)


class Block(nn.Module):
    def __init__(self, h, heads):
        super().__init__()
        self.heads = heads
        self.ln1, self.ln2 = nn.LayerNorm(h), nn.LayerNorm(h)
        self.qkv, self.proj = nn.Linear(h, 3 * h), nn.Linear(h, h)
        self.mlp = nn.Sequential(nn.Linear(h, 4 * h), nn.GELU(), nn.Linear(4 * h, h))

    def forward(self, x, bias):  # bias [n,1,1,L] additive key mask
        n, l, h = x.shape
        q, k, v = self.qkv(self.ln1(x)).reshape(n, l, 3, self.heads, h // self.heads).permute(2, 0, 3, 1, 4)
        att = torch.softmax(q @ k.transpose(-1, -2) / math.sqrt(h // self.heads) + bias, dim=-1)
        x = x + self.proj((att @ v).transpose(1, 2).reshape(n, l, h))
        return x + self.mlp(self.ln2(x))


class TextEncoder(nn.Module):
    def __init__(self, vocab, L, H, D, layers=2, heads=4):
        super().__init__()
        self.embed = nn.Embedding(vocab, H)
        self.position = nn.Parameter(torch.randn(L, H) * 0.02)
        self.blocks = nn.ModuleList([Block(H, heads) for _ in range(layers)])
        self.ln = nn.LayerNorm(H)
        self.project = nn.Linear(H, D)

    def forward(self, input_ids):
        mask = input_ids != 0
        bias = (~mask).to(torch.float32)[:, None, None, :] * -1e4
        x = self.embed(input_ids) + self.position
        for b in self.blocks:
            x = b(x, bias)
        hidden = self.ln(x)
        text_embeds = F.normalize(self.project(masked_mean(hidden, mask)), dim=-1, eps=1e-6)
        return text_embeds, hidden


def mlp(cin, width, cout):
    """Two hidden SiLU layers of the given width."""
    return nn.Sequential(nn.Linear(cin, width), nn.SiLU(), nn.Linear(width, width), nn.SiLU(), nn.Linear(width, cout))


def split_parts(image_embeds, colour_dims):
    """The factored image embedding's colour part (the first colour_dims dims) and layout part (the rest)."""
    return image_embeds[:, :colour_dims], image_embeds[:, colour_dims:]


def coords(n, size):
    """[n,2,size,size] pixel-centre x and y in [-1, 1]."""
    ys, xs = torch.meshgrid(torch.linspace(-1, 1, size), torch.linspace(-1, 1, size), indexing="ij")
    return torch.stack([xs, ys])[None].expand(n, -1, -1, -1)


class ImageEncoder(nn.Module):
    """pixel_values -> image_embeds, factored by construction: a layout branch that cannot see colour (a CNN on the
    foreground map: each pixel's distance to the border's mean colour, over the image's largest such distance) and a
    colour branch that cannot see shape (an MLP on two mean colours: the border's, and the foreground's). Each branch's
    output is L2-normalised, and the two are concatenated, scaled so the whole has norm 1. A single CNN on the pixels
    entangled the two: linear heads read held-out (shape, colour) pairs' colour right in about half the cases and their
    shape in a fifth, while seen pairs read right."""

    def __init__(self, D, colour_dims, size=64):
        super().__init__()
        self.register_buffer("mean", torch.tensor(CLIP_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(CLIP_STD).view(1, 3, 1, 1), persistent=False)
        border = torch.ones(1, 1, size, size)
        border[:, :, 2:-2, 2:-2] = 0
        self.register_buffer("border", border / border.sum(), persistent=False)
        self.colour_mlp = mlp(6, 256, colour_dims)
        c = [32, 48, 96, 128, 128]
        self.convs = nn.ModuleList([nn.Conv2d(3, c[0], 3, padding=1)] +
                                   [nn.Conv2d(c[i], c[i + 1], 3, stride=2, padding=1) for i in range(4)])
        self.register_buffer("coords", coords(1, size), persistent=False)
        self.fc = nn.Sequential(nn.Linear(128 * 16, 256), nn.SiLU(), nn.Linear(256, D - colour_dims))
        self.pool_fc = nn.Linear(128, 256)  # a translation-invariant branch (global max pool of the 8 px features)

    def forward(self, pixel_values):
        rgb = pixel_values * self.std + self.mean
        bg = (rgb * self.border).sum(dim=(2, 3), keepdim=True)
        dist = (rgb - bg).pow(2).sum(dim=1, keepdim=True).add(1e-6).sqrt()
        fg = dist / dist.amax(dim=(2, 3), keepdim=True)
        # the object's mean colour, over the pixels clearly off the background (an object that reaches into the border
        # pulls the border's mean towards itself, so its pixels' distance stays well above that of the background's)
        w = F.relu(fg - 0.5)
        obj = (rgb * w).sum(dim=(2, 3)) / w.sum(dim=(2, 3)).clamp(min=1e-6)
        colour = F.normalize(self.colour_mlp(torch.cat([obj, bg.flatten(1)], dim=1) * 4 - 2), dim=-1, eps=1e-6)
        x = torch.cat([fg, self.coords.expand(fg.shape[0], -1, -1, -1)], dim=1)
        pooled = None
        for i, conv in enumerate(self.convs):
            x = F.silu(conv(x))
            if i == 3:
                pooled = torch.amax(x, dim=(2, 3))
        layout = F.normalize(self.fc[2](F.silu(self.fc[0](x.flatten(1)) + self.pool_fc(pooled))), dim=-1, eps=1e-6)
        return torch.cat([colour, layout], dim=1) * math.sqrt(0.5)


class AttributeHeads(nn.Module):
    """Linear heads on the factored image embedding: object and background colour from its colour part, shape, size
    and centre from its layout part. One linear layer over the whole embedding learnt that purple never comes with a
    circle, and read held-out pairs' colour wrong every time, though their colour part is that of a seen pair."""

    def __init__(self, D, colour_dims, n_colours, n_shapes):
        super().__init__()
        self.colour_dims = colour_dims
        self.colour = nn.Linear(colour_dims, 2 * n_colours)
        self.layout = nn.Linear(D - colour_dims, n_shapes + 2 + 2)

    def forward(self, image_embeds):
        """[n, colour (n_colours), background (n_colours), shape (n_shapes), size (2), centre (2)]"""
        colour, layout = split_parts(image_embeds, self.colour_dims)
        return torch.cat([self.colour(colour), self.layout(layout)], dim=1)


class Clip(nn.Module):
    def __init__(self, vocab, L, H, D, layers, heads, n_colours, n_shapes, colour_dims):
        super().__init__()
        self.text = TextEncoder(vocab, L, H, D, layers, heads)
        self.image = ImageEncoder(D, colour_dims)
        self.logit_scale = nn.Parameter(torch.tensor(math.log(1 / 0.07)))
        # auxiliary attribute heads on the image embedding (so it carries what the decoder needs)
        self.aux = AttributeHeads(D, colour_dims, n_colours, n_shapes)


class Prior(nn.Module):
    def __init__(self, D, H, width=512, blocks=3):
        super().__init__()
        self.D = D
        self.inp = nn.Linear(2 * D + 128 + H, width)
        self.blocks = nn.ModuleList([nn.Sequential(nn.LayerNorm(width), nn.Linear(width, 2 * width), nn.SiLU(),
                                                   nn.Linear(2 * width, width)) for _ in range(blocks)])
        self.out = nn.Sequential(nn.LayerNorm(width), nn.Linear(width, D))

    def forward(self, hidden_states, timestep, proj_embedding, encoder_hidden_states, attention_mask):
        context = masked_mean(encoder_hidden_states, attention_mask)
        x = self.inp(torch.cat([hidden_states, timestep_embedding(timestep, 128), proj_embedding, context], dim=1))
        for b in self.blocks:
            x = x + b(x)
        return self.out(x)


class ResBlock(nn.Module):
    def __init__(self, cin, cout, cond):
        super().__init__()
        self.n1, self.n2 = nn.GroupNorm(8, cin), nn.GroupNorm(8, cout)
        self.c1, self.c2 = nn.Conv2d(cin, cout, 3, padding=1), nn.Conv2d(cout, cout, 3, padding=1)
        self.film = nn.Linear(cond, 2 * cout)
        self.skip = nn.Conv2d(cin, cout, 1) if cin != cout else nn.Identity()

    def forward(self, x, c):
        h = self.c1(F.silu(self.n1(x)))
        scale, shift = self.film(c)[:, :, None, None].chunk(2, dim=1)
        h = self.c2(F.silu(self.n2(h) * (1 + scale) + shift))
        return self.skip(x) + h


class Sketcher(nn.Module):
    """image embedding -> a 64 px drawing of the scene, as a pixel-unshuffled [n,12,32,32] map. Heads read the object's
    shape (a softmax over learnt sprites, one per shape of the world), centre, radius and colour and the background
    colour from the embedding; the sprites, mixed by that softmax, are placed and scaled with a sampling grid. A
    convolutional sketcher that regressed the image from the embedding drew small objects' silhouettes right in about
    half the cases, though a linear probe reads shape from the same embedding: reading attributes and drawing them
    makes that probe's accuracy the sketch's, and where the embedding is unsure the mix of sprites shows it."""

    SPRITE = 32
    EXTENT = 1.25  # a sprite spans +-1.25 radii around the centre (a star's points reach 1.08 r)
    SHARPNESS = 8.0

    def __init__(self, D, sprites, colour_dims, width=128, size=64):
        super().__init__()
        # the embedding is factored (ImageEncoder): colours are read from its colour part only, and shape, centre and
        # radius from its layout part only, so a (shape, colour) pair never seen in training is read as its parts
        self.colour_dims = colour_dims
        self.colour_mlp = mlp(colour_dims, width, 6)
        self.sizes = (sprites, 2, 1)
        self.layout_mlp = mlp(D - colour_dims, width, sum(self.sizes))
        g = (torch.arange(self.SPRITE, dtype=torch.float32) + 0.5) / self.SPRITE * 2 - 1
        # every sprite starts as a soft disc; its logits are stored divided by SHARPNESS, so that Adam's steps (about
        # lr each, whatever the gradient) can move a pixel from outside to inside within a few hundred steps
        disc = (0.7 - torch.sqrt(g[None, :] ** 2 + g[:, None] ** 2)) * 4.0 / self.SHARPNESS
        self.sprites = nn.Parameter(disc.expand(sprites, 1, -1, -1).clone())
        p = (torch.arange(size, dtype=torch.float32) + 0.5) / size * 2 - 1  # pixel centres, grid_sample's units
        self.register_buffer("pixels", torch.stack(torch.meshgrid(p, p, indexing="xy"), dim=-1)[None], persistent=False)

    def read(self, image_embeds):
        """The heads: shape logits [n,sprites], centre [n,2] (x, y in [-1, 1]), radius [n,1] (in half image widths),
        object and background colour [n,3] (in [-1, 1])."""
        colour_part, layout_part = split_parts(image_embeds * 4.0, self.colour_dims)
        colour, bg = self.colour_mlp(colour_part).split(3, dim=1)
        logits, centre, radius = self.layout_mlp(layout_part).split(self.sizes, dim=1)
        return {"shape": logits, "centre": torch.tanh(centre), "radius": 0.1 + 0.5 * torch.sigmoid(radius),
                "colour": torch.tanh(colour), "background": torch.tanh(bg)}

    def forward(self, image_embeds, parts=False):
        r = self.read(image_embeds)
        n, k = image_embeds.shape[0], self.sprites.shape[0]
        mix = (F.softmax(r["shape"], dim=1) @ torch.sigmoid(self.SHARPNESS * self.sprites).reshape(k, -1)).reshape(n, 1, self.SPRITE, self.SPRITE)
        grid = (self.pixels - r["centre"][:, None, None, :]) / (r["radius"][:, None, None, :] * self.EXTENT)
        alpha = F.grid_sample(mix, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
        bg = r["background"][:, :, None, None]
        drawn = F.pixel_unshuffle(bg + alpha * (r["colour"][:, :, None, None] - bg), 2)
        return (drawn, r) if parts else drawn


class Decoder(nn.Module):
    """sample [n,7,64,64] (x_t, masked image, keep mask), timestep [n], image_embeds [n,D] -> x0 [n,3,64,64].
    Works at 32/16/8 px internally (pixel-unshuffle in, pixel-shuffle out) with coordinate channels; FiLM
    conditioning on the timestep and the image embedding. A sketch head (MLP) turns the embedding into a 16 px map
    whose first 3 channels are trained to be the 16 px image, added at the 16 px level: global FiLM alone left the
    object's place to chance, though the embedding carries it (a linear probe reads the centre within 2 px). A
    sketcher (the object's attributes read from the embedding, drawn with learnt sprites) adds its 64 px drawing at the
    32 px level, for the silhouette."""

    SKETCH = 8  # channels of the sketch map

    def __init__(self, D, sprites, colour_dims, channels=(48, 96, 128), size=64):
        super().__init__()
        c1, c2, c3 = channels
        cond = 256
        self.cond = nn.Sequential(nn.Linear(128 + D, cond), nn.SiLU(), nn.Linear(cond, cond), nn.SiLU())
        self.register_buffer("coords", coords(1, size // 2), persistent=False)
        self.inp = nn.Conv2d(7 * 4 + 2, c1, 3, padding=1)
        self.e1 = ResBlock(c1, c1, cond)
        self.d1 = nn.Conv2d(c1, c2, 3, stride=2, padding=1)
        self.e2 = ResBlock(c2, c2, cond)
        self.d2 = nn.Conv2d(c2, c3, 3, stride=2, padding=1)
        self.m1, self.m2 = ResBlock(c3, c3, cond), ResBlock(c3, c3, cond)
        self.u2 = ResBlock(c3 + c2, c2, cond)
        self.u1 = ResBlock(c2 + c1, c1, cond)
        self.out = nn.Sequential(nn.GroupNorm(8, c1), nn.SiLU(), nn.Conv2d(c1, 12, 3, padding=1))
        self.sketch_size = size // 4
        self.sketch = nn.Sequential(nn.Linear(D, 512), nn.SiLU(), nn.Linear(512, self.SKETCH * self.sketch_size ** 2))
        self.sketch_in = nn.Conv2d(self.SKETCH, c2, 1)
        nn.init.zeros_(self.sketch_in.weight)  # added to a trained network: starts as a no-op
        nn.init.zeros_(self.sketch_in.bias)
        self.sketcher = Sketcher(D, sprites, colour_dims, size=size)
        self.sketcher_in = nn.Conv2d(12, c1, 3, padding=1)
        nn.init.zeros_(self.sketcher_in.weight)
        nn.init.zeros_(self.sketcher_in.bias)

    def forward(self, sample, timestep, image_embeds, return_sketch=False):
        c = self.cond(torch.cat([timestep_embedding(timestep, 128), image_embeds * 4.0], dim=1))
        s = self.sketch_size
        sketch = self.sketch(image_embeds * 4.0).reshape(-1, self.SKETCH, s, s)
        x = F.pixel_unshuffle(sample, 2)
        drawn, parts = self.sketcher(image_embeds, parts=True)
        x = self.inp(torch.cat([x, self.coords.expand(x.shape[0], -1, -1, -1)], dim=1)) + self.sketcher_in(drawn)
        h1 = self.e1(x, c)
        h2 = self.e2(self.d1(h1) + self.sketch_in(sketch), c)
        h = self.m2(self.m1(self.d2(h2), c), c)
        h = self.u2(torch.cat([F.interpolate(h, scale_factor=2.0, mode="nearest"), h2], dim=1), c)
        h = self.u1(torch.cat([F.interpolate(h, scale_factor=2.0, mode="nearest"), h1], dim=1), c)
        out = F.pixel_shuffle(self.out(h), 2)
        return (out, sketch[:, :3], F.pixel_shuffle(drawn, 2), parts) if return_sketch else out


class GaussianBlur(nn.Module):
    """A fixed depthwise Gaussian blur of an RGB image (replicate padding), for the upsamplers' smoothed inputs."""

    def __init__(self, sigma):
        super().__init__()
        r = max(1, math.ceil(3 * sigma))
        t = torch.arange(-r, r + 1, dtype=torch.float32)
        k = torch.exp(-t * t / (2 * sigma * sigma))
        k = k / k.sum()
        # not persistent: the kernel follows from sigma (config.json), so checkpoints need not carry it
        self.register_buffer("kernel", (k[:, None] * k[None, :]).expand(3, 1, 2 * r + 1, 2 * r + 1).clone(), persistent=False)
        self.r = r

    def forward(self, x):
        return F.conv2d(F.pad(x, (self.r,) * 4, mode="replicate"), self.kernel, groups=3)


class Upsampler(nn.Module):
    """x4 super-resolution for the shapes world: image [n,3,h,w] in 0..1 -> [n,3,4h,4w], the bilinear upscale plus a
    predicted residual.

    - Smoothed copies of the input (fixed Gaussian blurs) join it: the 0.5 level line of a blurred staircase is already
      close to the true outline, so the net mostly has to find it and draw a crisp edge there, a local job, rather
      than learn to fit curves to staircases.
    - A trunk of dilated residual blocks at 1/unshuffle of the input's resolution (pixel-unshuffle in, pixel-shuffle
      out) reads the context; replicate padding keeps borders free of the dark rims zero padding leaves.
    - A per-pixel head at the output resolution reads the bilinear upscales of the input and its smoothed copies with
      the trunk's features, so the edge is placed by the interpolated field itself, at the output's pixel pitch.
    """

    def __init__(self, channels, dilations, unshuffle=1, scale=4, smooth=(), head=16):
        super().__init__()
        self.unshuffle, self.scale = unshuffle, scale
        self.blurs = nn.ModuleList(GaussianBlur(s) for s in smooth)
        cin = 3 * (1 + len(smooth))
        conv = lambda a, b, d=1: nn.Conv2d(a, b, 3, padding=d, dilation=d, padding_mode="replicate")  # noqa: E731
        self.head = conv(cin * unshuffle * unshuffle, channels)
        self.body = nn.ModuleList(nn.Sequential(conv(channels, channels, d), nn.SiLU(), conv(channels, channels, d))
                                  for d in dilations)
        # the last layer is 1x1: it only spreads each position's features over its (scale * unshuffle)^2 output pixels
        self.tail = nn.Sequential(conv(channels, channels), nn.SiLU(), nn.Conv2d(channels, head * (scale * unshuffle) ** 2, 1))
        self.pixel = nn.Sequential(nn.Conv2d(cin + head, head, 1), nn.SiLU(), nn.Conv2d(head, head, 1), nn.SiLU(),
                                   nn.Conv2d(head, 3, 1))

    def forward(self, image):
        x = torch.cat([image] + [blur(image) for blur in self.blurs], dim=1)
        up = F.interpolate(x, scale_factor=self.scale, mode="bilinear", align_corners=False)
        h = F.pixel_unshuffle(x, self.unshuffle) if self.unshuffle > 1 else x
        h = self.head(h)
        for block in self.body:
            h = h + block(F.silu(h))
        features = F.pixel_shuffle(self.tail(h), self.scale * self.unshuffle)
        return up[:, :3] + self.pixel(torch.cat([up, features], dim=1))
