import { existsSync } from "node:fs";
import { EmbeddingToImage, loadBundle, TextToEmbedding, type Bundle } from "@unclip/unclip";
import { decodeImage, encodePng, type RgbImage } from "@unclip/unclip/image";
import { ensureEsrganBundle, loadUpscaler, type Upscaler } from "@unclip/upscaler";
import { MAX_BATCH, type BenchConfig } from "./bench-config.js";

/** PNG compression as the workers write it: the decoder with sharp's default, the upscaler at level 3. */
const PNG_LEVEL = (size: number) => (size === 64 ? 6 : 3);

export const PROMPTS = ["a red circle on blue", "a green star top left", "a large yellow square", "a purple heart on white"];
export type OutputSize = 64 | 256 | 1024;

/** What one image of a job cost in process, operation by operation (ms), and the PNGs the farm would store. */
export interface ImageTimings {
  readonly ops: Readonly<Record<string, number>>;
  /** The work a single process needs for the image: the stages and the final PNG (no intermediate PNGs). */
  readonly totalMs: number;
  readonly pngs: Readonly<Record<number, Uint8Array>>;
}

/** A pipeline run: wall time for all images, and each image's time from the start to its final PNG. */
export interface PipelineRun {
  readonly images: number;
  readonly seconds: number;
  readonly latenciesMs: number[];
}

interface Work {
  index: number;
  prompt: string;
  seed: bigint;
  embedding?: Float32Array;
  image?: RgbImage;
}

/**
 * The farm's three stages in one process, on the same bundles, batch sizes and upscale settings: no NATS, no S3,
 * no gRPC, no intermediate PNGs. Stages run overlapped, as the pools do: each stage is a loop over its own queue,
 * and onnxruntime-node runs each session on its own threads, so the prior of the next batch runs while the decoder
 * or the upscaler works.
 */
export class InProcess {
  private constructor(
    readonly bundles: readonly Bundle[],
    readonly upscaler: Upscaler,
    private readonly prior: TextToEmbedding,
    private readonly decoder: EmbeddingToImage,
    private readonly cfg: BenchConfig,
  ) {}

  static async load(cfg: BenchConfig): Promise<InProcess> {
    // Each stage's sessions with its own worker's threading, as the pools load them.
    const priorBundle = await loadBundle(cfg.bundle, { sections: ["tokenizer", "clip", "prior"], ...cfg.threading.prior });
    const decoderBundle = await loadBundle(cfg.bundle, { sections: ["decoder"], ...cfg.threading.decoder });
    const named = /^esrgan-(slim|medium)-x([2348])$/.exec(cfg.upscaler);
    const dir =
      named && !existsSync(cfg.upscaler)
        ? await ensureEsrganBundle(named[1] as "slim" | "medium", Number(named[2]) as 2 | 3 | 4 | 8)
        : cfg.upscaler;
    const upscaler = await loadUpscaler(dir, { executionProvider: "cpu", ...cfg.threading.upscale });
    return new InProcess(
      [priorBundle, decoderBundle],
      upscaler,
      new TextToEmbedding(priorBundle),
      new EmbeddingToImage(decoderBundle),
      cfg,
    );
  }

  /** Runs every model at the batch shapes the benchmark uses, once, as the farm's warm-up jobs do for the workers. */
  async warmUp(): Promise<void> {
    for (const n of [MAX_BATCH.prior, 1]) await this.embed(works(n));
    const embedded = await this.embed(works(MAX_BATCH.decoder));
    for (const n of [MAX_BATCH.decoder, 1]) await this.decode(embedded.slice(0, n));
    const images = embedded.map((w) => w.image!);
    for (const n of [MAX_BATCH.upscale, 1]) await this.upscaler.upscale(images.slice(0, n));
    await this.timedImage(1024, 1n);
  }

  /** `images` images of `size` px through the overlapped stages, all queued at the start. */
  async pipeline(size: OutputSize, images: number): Promise<PipelineRun> {
    const started = performance.now();
    const latenciesMs: number[] = [];
    const done = async (image: RgbImage) => {
      await encodePng(image, { compressionLevel: PNG_LEVEL(size) });
      latenciesMs.push(performance.now() - started);
    };
    const priorQ = new WorkQueue<Work>();
    const decoderQ = new WorkQueue<Work>();
    const upscaleQ = new WorkQueue<Work>();
    priorQ.push(...works(images));
    const stages = [
      drain(priorQ, images, MAX_BATCH.prior, async (batch) => decoderQ.push(...(await this.embed(batch)))),
      drain(decoderQ, images, MAX_BATCH.decoder, async (batch) => {
        await this.decode(batch);
        if (size === 64) for (const w of batch) await done(w.image!);
        else upscaleQ.push(...batch);
      }),
    ];
    if (size > 64) {
      // One upscale loop serves both upscale stages, as the upscale worker does: a batch holds one stage (one input size).
      const tasks = images * (size === 1024 ? 2 : 1);
      stages.push(
        drain(
          upscaleQ,
          tasks,
          MAX_BATCH.upscale,
          async (batch) => {
            const target = batch[0]!.image!.width === 64 ? 256 : 1024;
            const out = await this.upscaleTo(
              batch.map((w) => w.image!),
              target,
            );
            for (let k = 0; k < batch.length; k++) {
              batch[k]!.image = out[k]!;
              if (target === size) await done(out[k]!);
              else upscaleQ.push(batch[k]!);
            }
          },
          (w) => String(w.image!.width),
        ),
      );
    }
    await Promise.all(stages);
    return { images, seconds: (performance.now() - started) / 1000, latenciesMs };
  }

  /** One image through every stage one after another, each operation timed, with the PNGs a farm job would write. */
  async timedImage(size: OutputSize, seed: bigint): Promise<ImageTimings> {
    const ops: Record<string, number> = {};
    const pngs: Record<number, Uint8Array> = {};
    const time = async <T>(name: string, f: () => Promise<T>): Promise<T> => {
      const t = performance.now();
      const out = await f();
      ops[name] = performance.now() - t;
      return out;
    };
    const [w] = await time("prior", () => this.embed([{ index: 0, prompt: PROMPTS[0]!, seed }]));
    await time("decoder", () => this.decode([w!]));
    let image = w!.image!;
    let total = ops.prior! + ops.decoder!;
    for (let side = 64; ; side *= 4) {
      pngs[side] = await time(`png_encode_${side}`, () => encodePng(image, { compressionLevel: PNG_LEVEL(side) }));
      if (side === size) break;
      image = await time(`png_decode_${side}`, () => decodeImage(pngs[side]!));
      const target = side * 4;
      image = (await time(`upscale_${target}`, () => this.upscaleTo([image], target)))[0]!;
      total += ops[`upscale_${target}`]!;
    }
    return { ops, totalMs: total + ops[`png_encode_${size}`]!, pngs };
  }

  /** Decoder images/s at one batch size over `images` images (their embeddings made beforehand, not timed). */
  async decoderRate(batch: number, images: number): Promise<number> {
    const embedded = await this.embed(works(images));
    const started = performance.now();
    for (let i = 0; i < images; i += batch) await this.decode(embedded.slice(i, i + batch));
    return images / ((performance.now() - started) / 1000);
  }

  async release(): Promise<void> {
    await Promise.allSettled([...this.bundles.map((b) => b.release()), this.upscaler.close()]);
  }

  private async embed(batch: Work[]): Promise<Work[]> {
    const embeddings = await this.prior.run(batch, { steps: this.cfg.priorSteps });
    batch.forEach((w, k) => (w.embedding = embeddings[k]!));
    return batch;
  }

  private async decode(batch: Work[]): Promise<void> {
    const images = await this.decoder.run(
      batch.map((w) => ({ embedding: w.embedding!, seed: w.seed })),
      { steps: this.cfg.decoderSteps },
    );
    batch.forEach((w, k) => (w.image = images[k]!));
  }

  /** As the upscale worker: passes of the model until the target side (×4 once, or ×2 twice). */
  private async upscaleTo(images: RgbImage[], target: number): Promise<RgbImage[]> {
    let out = images;
    // As the upscale worker with no UNCLIP_UPSCALE_* set: the bundle's own tiling and back-projection.
    while (out[0]!.width < target) out = await this.upscaler.upscale(out);
    return out;
  }
}

function works(n: number): Work[] {
  return Array.from({ length: n }, (_, i) => ({ index: i, prompt: PROMPTS[i % PROMPTS.length]!, seed: BigInt(i + 1) }));
}

/** A stage's queue: take() hands out up to max items that share the oldest item's key, as the worker's batcher. */
class WorkQueue<T> {
  private readonly items: T[] = [];
  private wake: (() => void) | undefined;

  push(...items: T[]): void {
    this.items.push(...items);
    this.wake?.();
  }

  async take(max: number, key: (item: T) => string): Promise<T[]> {
    while (this.items.length === 0) await new Promise<void>((resolve) => (this.wake = resolve));
    this.wake = undefined;
    const k = key(this.items[0]!);
    const batch: T[] = [];
    for (let i = 0; i < this.items.length && batch.length < max; ) {
      if (key(this.items[i]!) === k) batch.push(this.items.splice(i, 1)[0]!);
      else i++;
    }
    return batch;
  }
}

/** Runs `run` on batches from `queue` until `count` items went through. */
async function drain<T>(
  queue: WorkQueue<T>,
  count: number,
  max: number,
  run: (batch: T[]) => Promise<void>,
  key = (_: T) => "",
): Promise<void> {
  for (let done = 0; done < count; ) {
    const batch = await queue.take(max, key);
    await run(batch);
    done += batch.length;
  }
}
