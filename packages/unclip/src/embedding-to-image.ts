import { Tensor, type InferenceSession } from "onnxruntime-node";
import type { Bundle } from "./bundle.js";
import { resolveDiffusionOptions, type DiffusionOptions } from "./diffusion-options.js";
import { applyGuidance } from "./guidance.js";
import type { RgbImage } from "./image-io.js";
import { BundleError, type DecoderSection } from "./manifest.js";
import { GaussianNoise } from "./noise.js";
import { createSampler, DDIMInverseSampler, type Sampler } from "./samplers.js";
import { squaredcosCapV2 } from "./schedule.js";

export interface InpaintInput {
  /** The source image at the decoder's size (64×64). */
  image: RgbImage;
  /** size×size, 1 = keep the source pixel, 0 = repaint. */
  keep: Uint8Array;
}

export interface EmbeddingItem {
  embedding: Float32Array;
  seed: bigint;
  inpaint?: InpaintInput;
  /**
   * The starting x_T (3·S·S values, planar, the decoder's space) instead of noise from the seed: a DDIM-inverted
   * source (invert), or a slerp of such latents. The seed's generator still supplies any later noise (DDPM).
   */
  latent?: Float32Array;
}

/** A source image to DDIM-invert, and the embedding to invert it under. */
export interface InversionItem {
  /** The image at the decoder's size (S×S). */
  image: RgbImage;
  embedding: Float32Array;
}

/** Inversion takes the decoder's options but no sampler (always DDIM); guidance defaults to 1 (no CFG), not the bundle's. */
export type InversionOptions = Omit<DiffusionOptions, "sampler">;

/** The source image in [-1, 1] (planar) and where to keep it, for re-imposing known pixels. */
interface KnownPixels {
  x0: Float32Array;
  keep: Uint8Array;
  source: RgbImage;
}

/** One diffusion loop's inputs: the sampler sets the direction (denoising, or DDIM inversion towards noise). */
interface Walk {
  sampler: Sampler;
  /** n items of 3·S·S values, moved in place. */
  x: Float32Array;
  embeddings: readonly Float32Array[];
  guidance: number;
  known: readonly (KnownPixels | undefined)[];
  generators: readonly GaussianNoise[];
  signal?: AbortSignal;
  onStep?: (step: number, total: number) => void;
}

/**
 * The decoder stage: 64 px diffusion conditioned on a CLIP image embedding (zero embedding = unconditional), ε guided
 * in one batch of 2n (n at guidance 1). Inpainting re-imposes the known pixels, noised to the next timestep, after every step (on a
 * 7-channel decoder it also sees the masked image and keep-mask), and composites them exactly into the result.
 * The same loop, run with DDIMInverseSampler, inverts images to the latents DDIM decodes them from (manipulations).
 */
export class EmbeddingToImage {
  private readonly decoder: InferenceSession;
  private readonly section: DecoderSection;
  private readonly alphasCumprod: Float64Array;

  constructor(readonly bundle: Bundle) {
    if (!bundle.sessions.decoder || !bundle.manifest.decoder) {
      throw new BundleError('EmbeddingToImage needs the "decoder" section loaded', bundle.dir);
    }
    this.decoder = bundle.sessions.decoder;
    this.section = bundle.manifest.decoder;
    if ((this.section.outChannels === 6) !== (this.section.scheduler.variance === "learned_range")) {
      throw new BundleError("decoder: outChannels 6 goes with variance learned_range, 3 with fixed_small_log", bundle.dir);
    }
    this.alphasCumprod = squaredcosCapV2(this.section.scheduler.trainTimesteps).alphasCumprod;
  }

  /** Values of one item's x_t (and of a latent): 3·S·S, planar. */
  get latentSize(): number {
    return 3 * this.section.size * this.section.size;
  }

  async run(items: readonly EmbeddingItem[], options: DiffusionOptions = {}): Promise<RgbImage[]> {
    const { steps, guidance, sampler: samplerName, signal, onStep } = resolveDiffusionOptions(this.section, options);
    const n = items.length;
    if (n === 0) return [];
    const itemSize = this.latentSize;
    const known = items.map((item, b) => (item.inpaint ? this.knownPixels(item.inpaint, b) : undefined));
    const sampler = createSampler(samplerName, this.section.scheduler, itemSize);
    sampler.setTimesteps(steps);
    const generators = items.map((item) => new GaussianNoise(item.seed));
    const x = new Float32Array(n * itemSize);
    items.forEach((item, b) => {
      if (!item.latent) return generators[b].fill(x, b * itemSize, (b + 1) * itemSize);
      if (item.latent.length !== itemSize) throw new RangeError(`item ${b}: the latent has ${item.latent.length} values, not ${itemSize}`);
      x.set(item.latent, b * itemSize);
    });
    await this.walk({ sampler, x, embeddings: items.map((item) => item.embedding), guidance, known, generators, signal, onStep });
    return items.map((_, b) => toImage(x.subarray(b * itemSize, (b + 1) * itemSize), this.section.size, known[b]));
  }

  /**
   * DDIM-inverts each image under its embedding: the x_T that run() with sampler "ddim", the same steps and the same
   * guidance decodes back to (closely, not exactly: docs/architecture.md §11). Steps default to the bundle's.
   */
  async invert(items: readonly InversionItem[], options: InversionOptions = {}): Promise<Float32Array[]> {
    const { steps, guidance, signal, onStep } = resolveDiffusionOptions(this.section, { ...options, guidance: options.guidance ?? 1 });
    const n = items.length;
    if (n === 0) return [];
    const itemSize = this.latentSize;
    const sampler = new DDIMInverseSampler(this.section.scheduler, itemSize);
    sampler.setTimesteps(steps);
    const x = new Float32Array(n * itemSize);
    items.forEach((item, b) => x.set(this.planar(item.image, b), b * itemSize));
    await this.walk({ sampler, x, embeddings: items.map((item) => item.embedding), guidance, known: [], generators: [], signal, onStep });
    return items.map((_, b) => x.slice(b * itemSize, (b + 1) * itemSize));
  }

  /**
   * The one diffusion loop. Rows are [uncond; cond] (2n) under guidance; at guidance 1 the unconditional half would
   * not change the result, so only the n conditional rows run.
   */
  private async walk({ sampler, x, embeddings, guidance, known, generators, signal, onStep }: Walk): Promise<void> {
    const n = embeddings.length;
    const { size: S, inChannels, outChannels, embedDim: D } = this.section;
    const plane = S * S;
    const itemSize = 3 * plane;
    const rowSize = inChannels * plane;
    const guided = guidance !== 1;
    const rows = guided ? 2 * n : n;
    const cond = guided ? n : 0;

    const embeds = new Float32Array(rows * D);
    embeddings.forEach((embedding, b) => {
      if (embedding.length !== D) throw new RangeError(`item ${b}: embedding has ${embedding.length} values, the decoder takes ${D}`);
      embeds.set(embedding, (cond + b) * D);
    });

    // x_t, then (7-channel decoders) the masked source image and the keep-mask, fixed for the run, in every row of the item.
    const input = new Float32Array(rows * rowSize);
    if (inChannels === 7) {
      known.forEach((k, b) => {
        if (!k) return;
        for (const row of guided ? [b, n + b] : [b]) {
          const base = row * rowSize;
          for (let p = 0; p < plane; p++) {
            const keep = k.keep[p];
            for (let c = 0; c < 3; c++) input[base + (3 + c) * plane + p] = keep ? k.x0[c * plane + p] : 0;
            input[base + 6 * plane + p] = keep;
          }
        }
      });
    }

    const timestep = new BigInt64Array(rows);
    const combined = guided ? new Float32Array(n * outChannels * plane) : undefined;
    const noise = new Float32Array(n * itemSize);
    const embedsTensor = new Tensor("float32", embeds, [rows, D]);

    const timesteps = sampler.timesteps;
    for (let k = 0; k < timesteps.length; k++) {
      signal?.throwIfAborted();
      const t = timesteps[k];
      for (let b = 0; b < n; b++) {
        const xb = x.subarray(b * itemSize, (b + 1) * itemSize);
        input.set(xb, b * rowSize);
        if (guided) input.set(xb, (n + b) * rowSize);
      }
      timestep.fill(BigInt(t));
      const result = await this.decoder.run({
        sample: new Tensor("float32", input, [rows, inChannels, S, S]),
        timestep: new Tensor("int64", timestep, [rows]),
        image_embeds: embedsTensor,
      });
      const output = result.out_sample.data as Float32Array;
      const prediction = combined ? applyGuidance(output, n, guidance, itemSize, combined) : output;
      if (sampler.needsNoise(k)) generators.forEach((g, b) => g.fill(noise, b * itemSize, (b + 1) * itemSize));
      sampler.step(prediction, t, k, x, noise);
      const next = k + 1 < timesteps.length ? timesteps[k + 1] : -1;
      known.forEach((kp, b) => {
        if (kp) this.reimpose(x.subarray(b * itemSize, (b + 1) * itemSize), kp, next, generators[b]);
      });
      onStep?.(k + 1, timesteps.length);
    }
  }

  private knownPixels({ image, keep }: InpaintInput, b: number): KnownPixels {
    const x0 = this.planar(image, b);
    const plane = this.section.size * this.section.size;
    if (keep.length !== plane) throw new RangeError(`item ${b}: the keep-mask must have ${plane} values, got ${keep.length}`);
    return { x0, keep, source: image };
  }

  /** An S×S RGB image in the decoder's space: planar, pixel/127.5 − 1. */
  private planar(image: RgbImage, b: number): Float32Array {
    const S = this.section.size;
    const plane = S * S;
    if (image.width !== S || image.height !== S || image.data.length !== 3 * plane) {
      throw new RangeError(`item ${b}: the image must be ${S}×${S} RGB, got ${image.width}×${image.height}`);
    }
    const x0 = new Float32Array(3 * plane);
    for (let p = 0; p < plane; p++) for (let c = 0; c < 3; c++) x0[c * plane + p] = image.data[3 * p + c] / 127.5 - 1;
    return x0;
  }

  /** x[keep] = √ᾱ_s·x0 + √(1−ᾱ_s)·z, the source noised to the level x now has (exactly x0 after the last step). */
  private reimpose(x: Float32Array, known: KnownPixels, s: number, generator: GaussianNoise) {
    const plane = known.keep.length;
    const alpha = s >= 0 ? this.alphasCumprod[s] : 1;
    const signal = Math.sqrt(alpha);
    const spread = Math.sqrt(1 - alpha);
    for (let c = 0; c < 3; c++) {
      for (let p = 0; p < plane; p++) {
        if (!known.keep[p]) continue;
        const i = c * plane + p;
        x[i] = s >= 0 ? signal * known.x0[i] + spread * generator.next() : known.x0[i];
      }
    }
  }
}

function toImage(x: Float32Array, S: number, known: KnownPixels | undefined): RgbImage {
  const plane = S * S;
  const data = new Uint8Array(3 * plane);
  for (let p = 0; p < plane; p++) {
    if (known?.keep[p]) {
      data[3 * p] = known.source.data[3 * p];
      data[3 * p + 1] = known.source.data[3 * p + 1];
      data[3 * p + 2] = known.source.data[3 * p + 2];
      continue;
    }
    for (let c = 0; c < 3; c++) {
      const v = Math.round((x[c * plane + p] + 1) * 127.5);
      data[3 * p + c] = v < 0 ? 0 : v > 255 ? 255 : v;
    }
  }
  return { width: S, height: S, data };
}
