import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { InferenceSession } from "onnxruntime-node";
import { Tensor } from "onnxruntime-node";
import { loadBundle, type Bundle } from "../src/bundle.js";
import { EmbeddingToImage, type EmbeddingItem } from "../src/embedding-to-image.js";
import { ImageToEmbedding } from "../src/image-to-embedding.js";
import type { RgbImage } from "../src/image-io.js";
import { GaussianNoise } from "../src/noise.js";
import { TextToEmbedding } from "../src/text-to-embedding.js";
import { squaredcosCapV2 } from "../src/schedule.js";
import { PromptTooLongError } from "../src/tokenizer.js";
import { TINY_BUNDLE } from "./helpers.js";

const D = 32;
let bundle: Bundle;
beforeAll(async () => {
  bundle = await loadBundle(TINY_BUNDLE, { sections: ["tokenizer", "clip", "prior", "decoder"] });
});
afterAll(() => bundle.release());

function bits(values: Float32Array | Uint8Array): Buffer {
  return Buffer.from(values.buffer, values.byteOffset, values.byteLength);
}

function randomImage(seed: bigint, size = 64): RgbImage {
  const noise = new GaussianNoise(seed);
  const data = new Uint8Array(size * size * 3).map(() => Math.min(255, Math.max(0, Math.round(128 + 60 * noise.next()))));
  return { width: size, height: size, data };
}

function embedding(seed: bigint): Float32Array {
  return new GaussianNoise(seed).fill(new Float32Array(D));
}

describe("TextToEmbedding", () => {
  it("returns one finite D-float embedding per prompt and reports each step", async () => {
    const steps: string[] = [];
    const out = await new TextToEmbedding(bundle).run(
      [
        { prompt: "a red circle on the left", seed: 1n },
        { prompt: "", seed: 2n },
      ],
      { steps: 5, onStep: (step, total) => steps.push(`${step}/${total}`) },
    );
    expect(out.map((e) => e.length)).toEqual([D, D]);
    expect(out.every((e) => e.every(Number.isFinite))).toBe(true);
    expect(steps).toEqual(["1/5", "2/5", "3/5", "4/5", "5/5"]);
  });

  it("gives a prompt bit-identical output alone and inside a batch of 4 (ddpm and ddim)", async () => {
    const prior = new TextToEmbedding(bundle);
    const item = { prompt: "small blue square in the top right corner", seed: 0xfeed_beef_1234_5678n };
    for (const sampler of ["ddpm", "ddim"] as const) {
      const options = { steps: 8, guidance: 4, sampler };
      const [alone] = await prior.run([item], options);
      const batch = await prior.run(
        [{ prompt: "green star", seed: 5n }, { prompt: "yellow ring at the bottom", seed: 6n }, item, { prompt: "", seed: 7n }],
        options,
      );
      expect(bits(batch[2])).toEqual(bits(alone));
      expect(bits(batch[0])).not.toEqual(bits(alone));
    }
  });

  it("refuses a prompt that is too long and stops when aborted", async () => {
    const prior = new TextToEmbedding(bundle);
    await expect(prior.run([{ prompt: new Array(20).fill("red").join(" "), seed: 1n }])).rejects.toThrow(PromptTooLongError);
    const controller = new AbortController();
    const run = prior.run([{ prompt: "red", seed: 1n }], {
      steps: 10,
      signal: controller.signal,
      onStep: (step) => step === 3 && controller.abort(new Error("cancelled by test")),
    });
    await expect(run).rejects.toThrow("cancelled by test");
  });

  it("needs its sections", async () => {
    const decoderOnly = await loadBundle(TINY_BUNDLE, { sections: ["decoder"] });
    expect(() => new TextToEmbedding(decoderOnly)).toThrow(/needs the "tokenizer", "clip" and "prior"/);
    await decoderOnly.release();
  });
});

describe("ImageToEmbedding", () => {
  it("embeds images of any size to D floats, the same alone and in a batch", async () => {
    const encoder = new ImageToEmbedding(bundle);
    const images = [randomImage(1n), randomImage(2n, 100), randomImage(3n, 32)];
    const out = await encoder.run(images);
    expect(out.map((e) => e.length)).toEqual([D, D, D]);
    expect(out.every((e) => e.every(Number.isFinite))).toBe(true);
    const [alone] = await encoder.run([images[1]]);
    expect(bits(out[1])).toEqual(bits(alone));
  });
});

describe("EmbeddingToImage", () => {
  it("renders 64×64 RGB images", async () => {
    const images = await new EmbeddingToImage(bundle).run(
      [
        { embedding: embedding(1n), seed: 1n },
        { embedding: embedding(2n), seed: 2n },
      ],
      { steps: 4 },
    );
    expect(images.map((img) => [img.width, img.height, img.data.length])).toEqual([
      [64, 64, 64 * 64 * 3],
      [64, 64, 64 * 64 * 3],
    ]);
    expect(bits(images[0].data)).not.toEqual(bits(images[1].data));
  });

  it("gives an item bit-identical output alone and inside a batch of 4 (plain and inpainting, ddpm and ddim)", async () => {
    const decoder = new EmbeddingToImage(bundle);
    const keep = new Uint8Array(64 * 64).map((_, p) => (p % 64 < 32 ? 1 : 0));
    const plain: EmbeddingItem = { embedding: embedding(10n), seed: 0xffff_ffff_ffff_fffen };
    const edit: EmbeddingItem = { embedding: embedding(11n), seed: 99n, inpaint: { image: randomImage(12n), keep } };
    for (const sampler of ["ddpm", "ddim"] as const) {
      const options = { steps: 5, guidance: 8, sampler };
      const [plainAlone] = await decoder.run([plain], options);
      const [editAlone] = await decoder.run([edit], options);
      const batch = await decoder.run(
        [{ embedding: embedding(20n), seed: 3n }, plain, edit, { embedding: embedding(21n), seed: 4n }],
        options,
      );
      expect(bits(batch[1].data)).toEqual(bits(plainAlone.data));
      expect(bits(batch[2].data)).toEqual(bits(editAlone.data));
    }
  });

  it("inpainting keeps every unmasked pixel exact", async () => {
    const source = randomImage(42n);
    // keep everything but a 24×24 square in the middle
    const keep = new Uint8Array(64 * 64).map((_, p) => (Math.abs((p % 64) - 32) < 12 && Math.abs(Math.floor(p / 64) - 32) < 12 ? 0 : 1));
    const [out] = await new EmbeddingToImage(bundle).run([{ embedding: embedding(5n), seed: 5n, inpaint: { image: source, keep } }], {
      steps: 6,
    });
    let changed = 0;
    for (let p = 0; p < keep.length; p++) {
      for (let c = 0; c < 3; c++) {
        if (keep[p]) expect(out.data[3 * p + c]).toBe(source.data[3 * p + c]);
        else if (out.data[3 * p + c] !== source.data[3 * p + c]) changed++;
      }
    }
    expect(changed).toBeGreaterThan(0);
  });

  it("refuses a wrongly sized embedding or inpainting image", async () => {
    const decoder = new EmbeddingToImage(bundle);
    await expect(decoder.run([{ embedding: new Float32Array(7), seed: 1n }])).rejects.toThrow(/embedding has 7 values/);
    const inpaint = { image: randomImage(1n, 32), keep: new Uint8Array(32 * 32) };
    await expect(decoder.run([{ embedding: embedding(1n), seed: 1n, inpaint }])).rejects.toThrow(/must be 64×64/);
  });

  it("on a 3-channel decoder, inpaints by re-imposing the noised known region", async () => {
    const seen: number[][] = [];
    const inputs: { t: number; sample: Float32Array }[] = [];
    // A stand-in decoder session: records its inputs and predicts ε = 0 with mid-range variance.
    const fake = {
      async run(feeds: Record<string, Tensor>) {
        const dims = feeds.sample.dims as number[];
        seen.push(dims);
        inputs.push({ t: Number((feeds.timestep.data as BigInt64Array)[0]), sample: Float32Array.from(feeds.sample.data as Float32Array) });
        const out = new Float32Array(dims[0] * 6 * 64 * 64);
        return { out_sample: new Tensor("float32", out, [dims[0], 6, 64, 64]) };
      },
    } as unknown as InferenceSession;
    const plainBundle: Bundle = {
      ...bundle,
      manifest: { ...bundle.manifest, decoder: { ...bundle.manifest.decoder!, inChannels: 3 } },
      sessions: { decoder: fake },
    };
    const source = randomImage(8n);
    const keep = new Uint8Array(64 * 64).map((_, p) => (p < 2048 ? 1 : 0));
    const [out] = await new EmbeddingToImage(plainBundle).run([{ embedding: embedding(1n), seed: 1n, inpaint: { image: source, keep } }], {
      steps: 3,
    });
    expect(seen).toEqual([
      [2, 3, 64, 64],
      [2, 3, 64, 64],
      [2, 3, 64, 64],
    ]);
    expect(bits(out.data.subarray(0, 2048 * 3))).toEqual(bits(source.data.subarray(0, 2048 * 3)));
    // The final composite alone would pass the check above. What the decoder is fed after each step shows the
    // re-imposition: in the known region x_t = √ᾱ_t·x0 + √(1−ᾱ_t)·z, so (x_t − √ᾱ_t·x0) / √(1−ᾱ_t) is standard normal
    // noise there, while in the region being repainted x_t owes nothing to the source.
    const alphas = squaredcosCapV2(1000).alphasCumprod;
    const plane = 64 * 64;
    const knownRegion = (sample: Float32Array, t: number) => {
      const x0: number[] = [];
      const xt: number[] = [];
      for (let c = 0; c < 3; c++) {
        for (let p = 0; p < plane; p++) {
          if (!keep[p]) continue;
          x0.push(source.data[3 * p + c] / 127.5 - 1);
          xt.push(sample[c * plane + p]);
        }
      }
      const mean = (v: number[]) => v.reduce((a, x) => a + x, 0) / v.length;
      const z = xt.map((x, i) => (x - Math.sqrt(alphas[t]) * x0[i]) / Math.sqrt(1 - alphas[t]));
      const zMean = mean(z);
      const x0Mean = mean(x0);
      const xtMean = mean(xt);
      // the least-squares slope of x_t on x0: √ᾱ_t when the source is re-imposed, about 0 when it is not
      const slope = mean(xt.map((x, i) => (x - xtMean) * (x0[i] - x0Mean))) / mean(x0.map((x) => (x - x0Mean) ** 2));
      return { zMean, zSd: Math.sqrt(mean(z.map((v) => (v - zMean) ** 2))), slope };
    };
    expect(inputs).toHaveLength(3);
    for (const { t, sample } of inputs.slice(1)) {
      const { zMean, zSd, slope } = knownRegion(sample, t);
      expect(Math.abs(slope - Math.sqrt(alphas[t])), `t=${t}: slope ${slope}`).toBeLessThan(0.08);
      expect(Math.abs(zMean), `t=${t}`).toBeLessThan(0.05);
      expect(Math.abs(zSd - 1), `t=${t}: sd ${zSd}`).toBeLessThan(0.05);
    }
  });
});
