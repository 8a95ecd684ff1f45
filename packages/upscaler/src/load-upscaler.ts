import path from "node:path";
import ort from "onnxruntime-node";
import { backProject } from "./back-project.js";
import { createSession } from "./create-session.js";
import { featherWeights, tileStarts } from "./plan-tiles.js";
import { readUpscalerManifest } from "./read-upscaler-manifest.js";
import type { LoadOptions, RgbImage, UpscaleOptions, Upscaler } from "./types.js";
import { UpscalerError } from "./upscaler-error.js";

const INPUT = "image";
const OUTPUT = "upscaled";
const DEFAULTS = { tileSize: 128, overlap: 16, tileBatch: 4, backProjection: 1 };

/** A rectangle of one input image that runs through the model as one batch item. */
interface Tile {
  image: number;
  x: number;
  y: number;
  /** Blend weights of the output tile along x and y; absent when the tile is the whole image. */
  wx?: Float32Array;
  wy?: Float32Array;
}

/**
 * Opens a single-pass upscaler bundle (docs/tensor-contract.md §7: image [n,3,h,w] -> upscaled [n,3,kh,kw]): one ONNX
 * session per model file, the model of a pass chosen by the input's side (`upscaler.bySide`, else `upscaler.model`).
 */
export async function loadUpscaler(bundleDir: string, options: LoadOptions): Promise<Upscaler> {
  const log = options.log ?? (() => {});
  const manifest = await readUpscalerManifest(bundleDir);
  const { scale, inputRange, bySide = {}, decoders = [] } = manifest.upscaler;
  const sessions = new Map<string, ort.InferenceSession>();
  let provider: Upscaler["provider"] = "cpu";
  try {
    for (const file of new Set([manifest.upscaler.model, ...Object.values(bySide)])) {
      const created = await createSession(path.join(bundleDir, file), options.executionProvider, log, options);
      sessions.set(file, created.session);
      provider = created.provider;
      if (!created.session.inputNames.includes(INPUT) || !created.session.outputNames.includes(OUTPUT)) {
        throw new UpscalerError(
          `upscaler bundle ${bundleDir}: ${file} has inputs [${created.session.inputNames}] and outputs [${created.session.outputNames}], expected ${INPUT} -> ${OUTPUT}`,
        );
      }
    }
  } catch (err) {
    await Promise.allSettled([...sessions.values()].map((s) => s.release()));
    throw err;
  }
  const sessionFor = (width: number, height: number) =>
    sessions.get((width === height && bySide[String(width)]) || manifest.upscaler.model)!;
  const bundle = `${manifest.name}@${manifest.version}`;
  // The bundle's settings sit between the library's defaults and the caller's options.
  const bundleSettings = defined({ tileSize: manifest.upscaler.tileSize, backProjection: manifest.upscaler.backProjection });
  log("upscaler loaded", { bundle, scale, provider, models: [...sessions.keys()], decoders });
  // Images are 0..255; the model works in inputRange, and answers in the same range.
  const [lo, hi] = inputRange;
  const toModel = (hi - lo) / 255;

  /** Runs `tiles` (all tw x th) as one batch and adds each weighted output into its image's accumulators. */
  async function runBatch(
    session: ort.InferenceSession,
    images: RgbImage[],
    tiles: Tile[],
    tw: number,
    th: number,
    sums: Float32Array[],
    weightSums: Float32Array[],
  ) {
    const plane = tw * th;
    const input = new Float32Array(tiles.length * 3 * plane);
    tiles.forEach((tile, b) => {
      const { data, width } = images[tile.image];
      for (let y = 0; y < th; y++)
        for (let x = 0; x < tw; x++) {
          const src = ((tile.y + y) * width + tile.x + x) * 3;
          const dst = b * 3 * plane + y * tw + x;
          for (let c = 0; c < 3; c++) input[dst + c * plane] = data[src + c] * toModel + lo;
        }
    });
    const result = await session.run({ [INPUT]: new ort.Tensor("float32", input, [tiles.length, 3, th, tw]) });
    const output = result[OUTPUT];
    const [, , oh, ow] = output.dims;
    if (oh !== th * scale || ow !== tw * scale) throw new UpscalerError(`${bundle}: a ${tw}x${th} input gave ${ow}x${oh}, not x${scale}`);
    const out = output.data as Float32Array;
    const outPlane = ow * oh;
    tiles.forEach((tile, b) => {
      const width = images[tile.image].width * scale;
      const sum = sums[tile.image];
      const weightSum = weightSums[tile.image];
      for (let y = 0; y < oh; y++) {
        const wy = tile.wy ? tile.wy[y] : 1;
        for (let x = 0; x < ow; x++) {
          const w = wy * (tile.wx ? tile.wx[x] : 1);
          const pixel = (tile.y * scale + y) * width + tile.x * scale + x;
          const src = b * 3 * outPlane + y * ow + x;
          for (let c = 0; c < 3; c++) sum[pixel * 3 + c] += w * out[src + c * outPlane];
          weightSum[pixel] += w;
        }
      }
    });
    output.dispose();
  }

  /** Upscales images that all have the same size: whole as one batch, or as tiles in batches of tileBatch. */
  async function upscaleGroup(
    images: RgbImage[],
    opts: Required<Omit<UpscaleOptions, "signal">> & { signal?: AbortSignal },
  ): Promise<RgbImage[]> {
    const { width, height } = images[0];
    const tiled = Math.max(width, height) > opts.tileSize;
    const [tw, th] = tiled ? [Math.min(width, opts.tileSize), Math.min(height, opts.tileSize)] : [width, height];
    const xs = tileStarts(width, tw, opts.overlap);
    const ys = tileStarts(height, th, opts.overlap);
    const tiles: Tile[] = images.flatMap((_, image) =>
      ys.flatMap((y, j) =>
        xs.map((x, i) =>
          tiled ? { image, x, y, wx: featherWeights(xs, i, tw, scale), wy: featherWeights(ys, j, th, scale) } : { image, x, y },
        ),
      ),
    );
    const outPixels = width * scale * height * scale;
    const sums = images.map(() => new Float32Array(outPixels * 3));
    const weightSums = images.map(() => new Float32Array(outPixels));
    const perBatch = tiled ? opts.tileBatch : tiles.length;
    const session = sessionFor(width, height);
    for (let i = 0; i < tiles.length; i += perBatch) {
      opts.signal?.throwIfAborted();
      await runBatch(session, images, tiles.slice(i, i + perBatch), tw, th, sums, weightSums);
    }
    return sums.map((sum, i) => {
      const weightSum = weightSums[i];
      for (let p = 0; p < outPixels; p++) for (let c = 0; c < 3; c++) sum[p * 3 + c] = (sum[p * 3 + c] / weightSum[p] - lo) / toModel;
      if (opts.backProjection > 0) backProject(images[i].data, width, height, sum, scale, opts.backProjection);
      const data = new Uint8Array(outPixels * 3);
      // The network overshoots 0..255 at sharp edges; clamp, as UpscalerJS does.
      for (let j = 0; j < data.length; j++) data[j] = sum[j] <= 0 ? 0 : sum[j] >= 255 ? 255 : Math.round(sum[j]);
      return { width: width * scale, height: height * scale, data };
    });
  }

  return {
    scale,
    bundle,
    provider,
    decoders,
    settings: bundleSettings,
    async upscale(images, upscaleOptions = {}) {
      // An option left undefined keeps the bundle's setting or the default rather than hiding it.
      const opts = { ...DEFAULTS, ...bundleSettings, ...defined(upscaleOptions) };
      if (!Number.isInteger(opts.tileSize) || opts.tileSize < 1)
        throw new UpscalerError(`tileSize ${opts.tileSize} is not a positive integer`);
      if (!Number.isInteger(opts.overlap) || opts.overlap < 0 || opts.overlap >= opts.tileSize) {
        throw new UpscalerError(`overlap ${opts.overlap} must be an integer in [0, tileSize ${opts.tileSize})`);
      }
      if (!Number.isInteger(opts.tileBatch) || opts.tileBatch < 1)
        throw new UpscalerError(`tileBatch ${opts.tileBatch} is not a positive integer`);
      if (!Number.isInteger(opts.backProjection) || opts.backProjection < 0)
        throw new UpscalerError(`backProjection ${opts.backProjection} is not a non-negative integer`);
      images.forEach((image, i) => {
        if (!(image.width > 0 && image.height > 0 && image.data.length === image.width * image.height * 3)) {
          throw new UpscalerError(`image ${i}: ${image.data.length} bytes is not RGB ${image.width}x${image.height}`);
        }
      });
      const groups = new Map<string, number[]>();
      images.forEach((image, i) => {
        const key = `${image.width}x${image.height}`;
        groups.set(key, [...(groups.get(key) ?? []), i]);
      });
      const results: RgbImage[] = new Array(images.length);
      for (const indices of groups.values()) {
        const outputs = await upscaleGroup(
          indices.map((i) => images[i]),
          opts,
        );
        indices.forEach((i, k) => (results[i] = outputs[k]));
      }
      return results;
    },
    async close() {
      await Promise.allSettled([...sessions.values()].map((s) => s.release()));
    },
  };
}

/** `options` without the entries whose value is undefined (which a spread would copy over a default). */
function defined<T extends object>(options: T): Partial<T> {
  return Object.fromEntries(Object.entries(options).filter(([, v]) => v !== undefined)) as Partial<T>;
}
