// The 64 → 256 → 1024 upscaling methods the upsampler benchmark compares, each one x4 pass at a time, as the farm's
// upscale worker runs them (packages/upscaler: its tiling, blending, back-projection and clamping).
import {
  ensureEsrganBundle,
  loadUpscaler,
  readUpscalerManifest,
  type RgbImage,
  type UpscaleOptions,
  type Upscaler,
  type UpscalerManifest,
} from "@unclip/upscaler";
import { bicubic } from "./upscale-images.js";

export interface UpscaleMethod {
  name: string;
  /** One x4 pass (64 → 256 or 256 → 1024). */
  pass(image: RgbImage): Promise<RgbImage>;
}

/**
 * What the upscale worker runs a bundle that sets none of its own with, such as ESRGAN (DEFAULT_SETTINGS in
 * services/upscale-worker/src/upscale-handler.ts): 128 px tiles overlapping by 16, one back-projection.
 */
export const FARM_OPTIONS = { tileSize: 128, overlap: 16, backProjection: 1 } as const;
/** A tile larger than any input: the whole image in one run. */
const WHOLE = 4096;

export const bicubicMethod: UpscaleMethod = { name: "bicubic", pass: (image) => bicubic(image, image.width * 4, image.height * 4) };

export async function loadEsrganSlim(): Promise<Upscaler> {
  return loadUpscaler(await ensureEsrganBundle("slim", 4), { executionProvider: "cpu" });
}

/** An upscaler bundle's manifest with the training record that models/train/export_upsamplers.py adds. */
export type TrainedUpscalerManifest = UpscalerManifest & {
  /** Per net, the training step and minutes of the exported weights. */
  training?: Record<string, { step: number; minutes: number }>;
};

/** Opens models/shapes-upsamplers as the upscale worker does: one upscaler, its model chosen by the input's side. */
export async function loadShapesUpsamplers(dir: string): Promise<{ manifest: TrainedUpscalerManifest; upscaler: Upscaler }> {
  const manifest: TrainedUpscalerManifest = await readUpscalerManifest(dir);
  return { manifest, upscaler: await loadUpscaler(dir, { executionProvider: "cpu" }) };
}

/** A method that runs each pass through `upscaler` with `options` (over the bundle's own settings, as the worker does). */
export function upscalerMethod(name: string, upscaler: Upscaler, options: UpscaleOptions): UpscaleMethod {
  return { name, pass: async (image) => (await upscaler.upscale([image], options))[0] };
}

export interface TimedPass {
  output: RgbImage;
  /** Process CPU time (user + system, every thread) and wall time of the pass. */
  cpuMs: number;
  wallMs: number;
}

export async function timedPass(method: UpscaleMethod, image: RgbImage): Promise<TimedPass> {
  const cpu = process.cpuUsage();
  const wall = performance.now();
  const output = await method.pass(image);
  const used = process.cpuUsage(cpu);
  return { output, cpuMs: (used.user + used.system) / 1000, wallMs: performance.now() - wall };
}

export interface SeamStats {
  /** Largest and mean |tiled − whole| over every pixel and channel, in 8-bit levels. */
  max: number;
  mean: number;
  /** Share of values that differ by more than 2 levels. */
  over2: number;
}

/**
 * How far a tiled run (the farm's 128 px tiles, 16 px overlap) departs from running each image whole, without
 * back-projection so that only the network and the blending are compared.
 */
export async function tileSeams(upscaler: Upscaler, images: RgbImage[]): Promise<SeamStats> {
  const whole = await upscaler.upscale(images, { tileSize: WHOLE, backProjection: 0 });
  const tiled = await upscaler.upscale(images, { tileSize: FARM_OPTIONS.tileSize, overlap: FARM_OPTIONS.overlap, backProjection: 0 });
  let max = 0;
  let sum = 0;
  let over2 = 0;
  let count = 0;
  whole.forEach((w, i) => {
    for (let j = 0; j < w.data.length; j++) {
      const d = Math.abs(w.data[j] - tiled[i].data[j]);
      max = Math.max(max, d);
      sum += d;
      over2 += +(d > 2);
      count++;
    }
  });
  return { max, mean: sum / count, over2: over2 / count };
}
