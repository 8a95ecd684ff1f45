import { availableParallelism } from "node:os";
import path from "node:path";
import { ConfigError, int, loadWorkerConfig, str, type Env } from "@unclip/core";
import type { Pool } from "@unclip/protocol";
import type { SessionThreading } from "@unclip/unclip";

/** What `npm run bench` measures and how much of it; every count is per round or per phase as noted. */
export interface BenchConfig {
  /** BENCH_QUICK=1: a smoke run of a couple of images per figure (under a minute); its figures are not the benchmark's. */
  readonly quick: boolean;
  /** BENCH_FORCE=1: run on a busy machine anyway; every figure is then flagged busy. */
  readonly force: boolean;
  /** Model bundle of the prior and decoder, on both sides (BENCH_BUNDLE, default models/shapes-v1). */
  readonly bundle: string;
  /**
   * Upscaler of both sides: a bundle directory or esrgan-<slim|medium>-x<scale> (BENCH_UPSCALER, default
   * models/shapes-upsamplers, the upscaler the farm's default configuration runs for shapes-v1 images).
   */
  readonly upscaler: string;
  /**
   * ONNX Runtime threading of the in-process side, per pool: each worker's own, compiled from the same
   * UNCLIP_INTRA_OP_THREADS and UNCLIP_INTRA_OP_SPINNING (the farm's services inherit this environment).
   */
  readonly threading: Readonly<Record<Pool, SessionThreading>>;
  /** Diffusion steps of every job on both sides (BENCH_PRIOR_STEPS 8, BENCH_DECODER_STEPS 10). */
  readonly priorSteps: number;
  readonly decoderSteps: number;
  /** Images of one saturation round at 64 px and at 1024 px (BENCH_IMAGES_64 384, BENCH_IMAGES_1024 64). */
  readonly images64: number;
  readonly images1024: number;
  /** Rounds of each saturation comparison; round r runs in-process then farm when r is even, farm then in-process when odd (BENCH_ROUNDS 4). */
  readonly rounds: number;
  /** One-image 64 px jobs on the idle farm, each paired with the same work in process (BENCH_IDLE_JOBS 60). */
  readonly idleJobs: number;
  /** One-image 256 px jobs on the idle farm for the hop timings (BENCH_HOP_JOBS 30). */
  readonly hopJobs: number;
  /** One-image 1024 px jobs for the latency breakdown, each paired with the same work in process (BENCH_BREAKDOWN_JOBS 8). */
  readonly breakdownJobs: number;
  /** Samples of each bare transport operation (BENCH_FLOOR_SAMPLES 200; the S3 ones a quarter of it). */
  readonly floorSamples: number;
  /** Images decoded at batch 8 and at batch 1, per round, for decoder_batch_gain (BENCH_GAIN_IMAGES 48). */
  readonly gainImages: number;
  /** Other processes' CPU (in cores) above which the machine counts as busy (BENCH_BUSY_CORES, default 0.3). */
  readonly busyCores: number;
  /** 1-minute load average at or above which the machine counts as busy at start (BENCH_BUSY_LOAD, default: the core count). */
  readonly busyLoad: number;
  /** Where bench.json, bench.md, the plots and the farm's logs go (BENCH_OUT, default out/bench). */
  readonly outDir: string;
}

/** Worker defaults of the farm (services/*-worker/src/main.ts); the in-process side batches the same. */
export const MAX_BATCH = { prior: 16, decoder: 8, upscale: 4 } as const;
/** The workers' intra-op thread defaults (services/*-worker/src/main.ts; 0: every core). */
const INTRA_OP_THREADS: Readonly<Record<Pool, number>> = { prior: 1, decoder: 0, upscale: 0 };

const KNOWN = new Set([
  "BENCH_QUICK",
  "BENCH_FORCE",
  "BENCH_BUNDLE",
  "BENCH_UPSCALER",
  "BENCH_PRIOR_STEPS",
  "BENCH_DECODER_STEPS",
  "BENCH_IMAGES_64",
  "BENCH_IMAGES_1024",
  "BENCH_ROUNDS",
  "BENCH_IDLE_JOBS",
  "BENCH_HOP_JOBS",
  "BENCH_BREAKDOWN_JOBS",
  "BENCH_FLOOR_SAMPLES",
  "BENCH_GAIN_IMAGES",
  "BENCH_BUSY_CORES",
  "BENCH_BUSY_LOAD",
  "BENCH_OUT",
]);

export function loadBenchConfig(env: Env, repoRoot: string): BenchConfig {
  const unknown = Object.keys(env).filter((k) => k.startsWith("BENCH_") && !KNOWN.has(k));
  if (unknown.length > 0) throw new ConfigError(`unknown variable(s) ${unknown.join(", ")}; known: ${[...KNOWN].join(", ")}`);
  const quick = flag(env, "BENCH_QUICK");
  // Quick mode only changes the defaults: an explicit BENCH_* count still wins.
  const d = quick
    ? { images64: 16, images1024: 2, rounds: 1, idle: 4, hop: 3, breakdown: 1, floor: 40, gain: 8 }
    : { images64: 384, images1024: 64, rounds: 4, idle: 60, hop: 30, breakdown: 8, floor: 200, gain: 48 };
  return {
    quick,
    force: flag(env, "BENCH_FORCE"),
    bundle: path.resolve(repoRoot, str(env, "BENCH_BUNDLE", "models/shapes-v1")),
    upscaler: upscaler(str(env, "BENCH_UPSCALER", "models/shapes-upsamplers"), repoRoot),
    threading: workerThreading(env),
    priorSteps: int(env, "BENCH_PRIOR_STEPS", 8, 1, 1000),
    decoderSteps: int(env, "BENCH_DECODER_STEPS", 10, 1, 1000),
    images64: int(env, "BENCH_IMAGES_64", d.images64, 1, 100_000),
    images1024: int(env, "BENCH_IMAGES_1024", d.images1024, 1, 1000),
    rounds: int(env, "BENCH_ROUNDS", d.rounds, 1, 20),
    idleJobs: int(env, "BENCH_IDLE_JOBS", d.idle, 1, 10_000),
    hopJobs: int(env, "BENCH_HOP_JOBS", d.hop, 1, 10_000),
    breakdownJobs: int(env, "BENCH_BREAKDOWN_JOBS", d.breakdown, 1, 1000),
    floorSamples: int(env, "BENCH_FLOOR_SAMPLES", d.floor, 4, 100_000),
    gainImages: int(env, "BENCH_GAIN_IMAGES", d.gain, 8, 10_000),
    busyCores: num(env, "BENCH_BUSY_CORES", 0.3),
    busyLoad: num(env, "BENCH_BUSY_LOAD", availableParallelism()),
    outDir: path.resolve(repoRoot, str(env, "BENCH_OUT", "out/bench")),
  };
}

/** A bundle directory (relative to the repository root) or a converted ESRGAN's name, as the upscale worker reads it. */
function upscaler(value: string, repoRoot: string): string {
  return /^esrgan-(slim|medium)-x\d$/.test(value) ? value : path.resolve(repoRoot, value);
}

function workerThreading(env: Env): Record<Pool, SessionThreading> {
  const of = (pool: Pool) => {
    const { intraOpThreads, spinning } = loadWorkerConfig(env, {
      metricsPort: 0,
      maxBatch: 1,
      bundle: "",
      intraOpThreads: INTRA_OP_THREADS[pool],
    });
    return { intraOpThreads, spinning };
  };
  return { prior: of("prior"), decoder: of("decoder"), upscale: of("upscale") };
}

function flag(env: Env, name: string): boolean {
  const v = env[name];
  if (v === undefined || v === "" || v === "0") return false;
  if (v === "1") return true;
  throw new ConfigError(`${name}=${JSON.stringify(v)} must be 1 or 0`);
}

function num(env: Env, name: string, fallback: number): number {
  const raw = env[name];
  if (raw === undefined || raw === "") return fallback;
  const v = Number(raw);
  if (!Number.isFinite(v) || v < 0) throw new ConfigError(`${name}=${JSON.stringify(raw)} must be a number ≥ 0`);
  return v;
}
