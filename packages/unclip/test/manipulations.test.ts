import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Tensor, type InferenceSession } from "onnxruntime-node";
import { loadBundle, type Bundle } from "../src/bundle.js";
import { EmbeddingToImage } from "../src/embedding-to-image.js";
import { ImageToEmbedding } from "../src/image-to-embedding.js";
import type { RgbImage } from "../src/image-io.js";
import { GaussianNoise } from "../src/noise.js";
import { interpolationFraction, slerp } from "../src/slerp.js";
import { TextDiff, TextDiffError, transformEmbedding } from "../src/text-diff.js";
import { TINY_BUNDLE } from "./helpers.js";

const SHAPES_BUNDLE = path.resolve(TINY_BUNDLE, "../shapes-v1");

const norm = (v: Float32Array) => Math.sqrt(v.reduce((s, x) => s + x * x, 0));
const dot = (a: Float32Array, b: Float32Array) => a.reduce((s, x, i) => s + x * b[i], 0);
const bits = (v: Float32Array | Uint8Array) => Buffer.from(v.buffer, v.byteOffset, v.byteLength);

/** A flat background with one flat disc: the kind of picture shapes-v1 knows. */
function disc(cx: number, cy: number, r: number, fg: number[], bg: number[]): RgbImage {
  const data = new Uint8Array(64 * 64 * 3);
  for (let y = 0; y < 64; y++)
    for (let x = 0; x < 64; x++) data.set((x + 0.5 - cx) ** 2 + (y + 0.5 - cy) ** 2 <= r * r ? fg : bg, (y * 64 + x) * 3);
  return { width: 64, height: 64, data };
}

describe("slerp", () => {
  it("gives the ends exactly, stays on the sphere and halves the angle", () => {
    const a = Float32Array.of(1, 0, 0);
    const b = Float32Array.of(0, 1, 0);
    expect(bits(slerp(a, b, 0))).toEqual(bits(a));
    expect(bits(slerp(a, b, 1))).toEqual(bits(b));
    const mid = slerp(a, b, 0.5);
    expect(norm(mid)).toBeCloseTo(1, 6);
    expect(dot(mid, a)).toBeCloseTo(Math.cos(Math.PI / 4), 6);
    expect(norm(slerp(Float32Array.of(3, 4), Float32Array.of(-4, 3), 0.3))).toBeCloseTo(5, 5);
  });

  it("falls back to a linear blend for parallel vectors and refuses mismatched ones", () => {
    expect([...slerp(Float32Array.of(1, 1), Float32Array.of(2, 2), 0.5)]).toEqual([1.5, 1.5]);
    expect(() => slerp(Float32Array.of(1), Float32Array.of(1, 2), 0.5)).toThrow(/1 and 2 values/);
  });

  it("places frame i of n at i/(n-1)", () => {
    expect([0, 1, 2, 7].map((i) => interpolationFraction(i, 8))).toEqual([0, 1 / 7, 2 / 7, 1]);
    expect(() => interpolationFraction(0, 1)).toThrow(/at least 2 frames/);
    expect(() => interpolationFraction(8, 8)).toThrow(/not one of 0..7/);
  });
});

describe("TextDiff (tiny-random)", () => {
  let bundle: Bundle;
  beforeAll(async () => {
    bundle = await loadBundle(TINY_BUNDLE, { sections: ["tokenizer", "clip"] });
  });
  afterAll(() => bundle.release());

  it("gives a unit direction per pair, the empty caption included", async () => {
    const dirs = await new TextDiff(bundle).run([
      { to: "blue", from: "red" },
      { to: "a blue square", from: "" },
    ]);
    expect(dirs.map((d) => d.length)).toEqual([32, 32]);
    dirs.forEach((d) => expect(norm(d)).toBeCloseTo(1, 5));
  });

  it("refuses captions that read the same to the encoder", async () => {
    await expect(new TextDiff(bundle).run([{ to: "Red", from: "red" }])).rejects.toThrow(TextDiffError);
    await expect(new TextDiff(bundle).run([{ to: "red", from: "red" }])).rejects.toThrow(/read the same/);
  });

  it("moves the image embedding by the slerp fraction `strength`, keeping its length", () => {
    const image = Float32Array.of(0, 2, 0);
    const direction = Float32Array.of(1, 0, 0);
    expect([...transformEmbedding(image, direction, 0)]).toEqual([0, 2, 0]);
    expect([...transformEmbedding(image, direction, 1)]).toEqual([2, 0, 0]);
    const half = transformEmbedding(image, direction, 0.5);
    expect(norm(half)).toBeCloseTo(2, 6);
    expect(half[0]).toBeCloseTo(half[1], 6);
    expect(() => transformEmbedding(image, direction, 1.5)).toThrow(/from 0 to 1/);
  });
});

describe("the empty caption", () => {
  it("pools to a finite unit vector in shapes-v1's text encoder (a masked mean over no tokens is 0, not NaN)", async () => {
    const shapes = await loadBundle(SHAPES_BUNDLE, { sections: ["tokenizer", "clip"] });
    try {
      const tokens = shapes.tokenizer!.encode([""]);
      const out = await shapes.sessions.textEncoder!.run({ input_ids: new Tensor("int64", tokens.inputIds, [1, tokens.length]) });
      const empty = out.text_embeds.data as Float32Array;
      expect(empty.every(Number.isFinite)).toBe(true);
      expect(norm(empty)).toBeCloseTo(1, 5);
      const [direction] = await new TextDiff(shapes).run([{ to: "a blue", from: "" }]);
      expect(norm(direction)).toBeCloseTo(1, 5);
    } finally {
      await shapes.release();
    }
  });
});

describe("EmbeddingToImage.invert", () => {
  let tiny: Bundle;
  beforeAll(async () => {
    tiny = await loadBundle(TINY_BUNDLE, { sections: ["decoder"] });
  });
  afterAll(() => tiny.release());

  it("starts from a given latent as from the seed's noise, and inverts to one latent per image", async () => {
    const decoder = new EmbeddingToImage(tiny);
    const embedding = new GaussianNoise(3n).fill(new Float32Array(32));
    const noise = new GaussianNoise(9n).fill(new Float32Array(decoder.latentSize));
    const options = { steps: 4, sampler: "ddim" as const };
    const [fromSeed] = await decoder.run([{ embedding, seed: 9n }], options);
    const [fromLatent] = await decoder.run([{ embedding, seed: 1n, latent: noise }], options);
    expect(bits(fromLatent.data)).toEqual(bits(fromSeed.data));

    const image = disc(20, 40, 12, [220, 30, 30], [245, 245, 245]);
    const steps: string[] = [];
    const latents = await decoder.invert([{ image, embedding }], { steps: 3, onStep: (k, n) => steps.push(`${k}/${n}`) });
    expect(latents[0].length).toBe(decoder.latentSize);
    expect(latents[0].every(Number.isFinite)).toBe(true);
    expect(steps).toEqual(["1/3", "2/3", "3/3"]);
    await expect(decoder.invert([{ image: { ...image, width: 32 }, embedding }])).rejects.toThrow(/must be 64×64/);
  });

  it("runs only the conditional rows at guidance 1 (no classifier-free guidance during inversion)", async () => {
    const rows: number[] = [];
    const fake = {
      async run(feeds: Record<string, Tensor>) {
        const n = feeds.sample.dims[0] as number;
        rows.push(n);
        return { out_sample: new Tensor("float32", new Float32Array(n * 6 * 64 * 64), [n, 6, 64, 64]) };
      },
    } as unknown as InferenceSession;
    const decoder = new EmbeddingToImage({ ...tiny, sessions: { decoder: fake } });
    const item = { image: disc(32, 32, 10, [0, 0, 0], [255, 255, 255]), embedding: new Float32Array(32) };
    await decoder.invert([item, item], { steps: 2 });
    await decoder.run([{ embedding: new Float32Array(32), seed: 1n }], { steps: 2, guidance: 8 });
    expect(rows).toEqual([2, 2, 2, 2]);
  });

  it("on shapes-v1, inverting and decoding with DDIM and the same steps gives the source back within 3 levels", async () => {
    const shapes = await loadBundle(SHAPES_BUNDLE, { sections: ["clip", "decoder"] });
    try {
      const sources = [
        disc(20, 20, 9, [220, 30, 30], [30, 70, 220]),
        disc(44, 40, 15, [240, 220, 30], [20, 20, 20]),
        disc(32, 32, 12, [30, 170, 50], [245, 245, 245]),
      ];
      const embeddings = await new ImageToEmbedding(shapes).run(sources);
      const decoder = new EmbeddingToImage(shapes);
      const steps = 10;
      const latents = await decoder.invert(
        sources.map((image, b) => ({ image, embedding: embeddings[b] })),
        { steps },
      );
      const decoded = await decoder.run(
        sources.map((_, b) => ({ embedding: embeddings[b], seed: 1n, latent: latents[b] })),
        { steps, guidance: 1, sampler: "ddim" },
      );
      // Measured: 1.5–1.7 levels of 255 (mean absolute error per channel).
      const errors = decoded.map((img, b) => img.data.reduce((s, v, i) => s + Math.abs(v - sources[b].data[i]), 0) / img.data.length);
      for (const error of errors) expect(error).toBeLessThan(3);
    } finally {
      await shapes.release();
    }
  });
});
