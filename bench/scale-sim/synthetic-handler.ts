import { randomBytes } from "node:crypto";
import { setTimeout as sleep } from "node:timers/promises";
import sharp from "sharp";
import type { StageHandler, StageOutput, TaskContext } from "@unclip/core";
import { encodeTensor, stageOutputSize, type Pool, type Stage, type Tensor } from "@unclip/protocol";

/** One batch as the model saw it: wall-clock start and end (epoch ms) and each task's queue wait. */
export interface BatchRecord {
  readonly startMs: number;
  readonly endMs: number;
  readonly size: number;
  readonly waitsMs: readonly number[];
}

/** What a synthetic stage returns: a CLIP-sized embedding, and one noise PNG per output size (incompressible, so S3 stores real-sized objects). */
export interface SyntheticOutputs {
  readonly embedding: Tensor;
  /** By side in pixels. */
  readonly pngs: ReadonlyMap<number, Uint8Array>;
}

export async function makeSyntheticOutputs(stages: readonly Stage[]): Promise<SyntheticOutputs> {
  const pngs = new Map<number, Uint8Array>();
  for (const size of new Set(stages.map(stageOutputSize).filter((s) => s > 0))) {
    const noise = randomBytes(size * size * 3);
    const png = await sharp(noise, { raw: { width: size, height: size, channels: 3 } })
      .png({ compressionLevel: 1 })
      .toBuffer();
    pngs.set(size, new Uint8Array(png));
  }
  return { embedding: encodeTensor({ dtype: "float32", shape: [1, 768], data: new Float32Array(768).fill(0.5) }), pngs };
}

/**
 * A model that takes `batchMs` per batch and uses no CPU: it sleeps, then returns constant outputs. It records
 * every batch it ran, so the simulation can see when the worker was busy and how long its tasks had waited.
 */
export class SyntheticHandler implements StageHandler {
  readonly bundle = "synthetic@1";
  readonly batches: BatchRecord[] = [];

  constructor(
    readonly pool: Pool,
    private readonly batchMs: number,
    private readonly outputs: SyntheticOutputs,
  ) {}

  batchKey(): string {
    return "synthetic";
  }

  async run(batch: readonly TaskContext[], signal: AbortSignal): Promise<StageOutput[]> {
    const startMs = Date.now();
    await sleep(this.batchMs, undefined, { signal });
    const size = stageOutputSize(batch[0]!.stage);
    const output: StageOutput = size > 0 ? { png: this.outputs.pngs.get(size)! } : { embedding: this.outputs.embedding };
    this.batches.push({
      startMs,
      endMs: Date.now(),
      size: batch.length,
      waitsMs: batch.map((b) => startMs - Number(b.task.enqueuedAtMs)),
    });
    return batch.map(() => output);
  }
}
