import { ConfigError, int, type Env } from "@unclip/core";
import { Stage, type Pool } from "@unclip/protocol";

/** One pool as the simulation runs it: the stage its tasks run, its batching, and the model's service time. */
export interface PoolProfile {
  readonly pool: Pool;
  /** The stage its tasks run; a task's route is the rest of the 256 px generate route from there. */
  readonly stage: Stage;
  readonly maxBatch: number;
  readonly prefetch: number;
  /** Measured model time for one full batch on this project's CPU workers, unscaled (seconds). */
  readonly batchSeconds: number;
}

/**
 * Per-batch service times measured on this project: the prior about 0.25 s per batch, the shapes-v1 decoder about
 * 0.26 s per 64 px image (MODEL_CARD: 249–264 ms), the ESRGAN upscaler about 1 s per image. CPU sessions do not batch
 * faster than image by image, so the decoder's batch time is 0.26 s per image of the batch.
 */
export const POOL_PROFILES: Readonly<Record<Pool, PoolProfile>> = {
  prior: { pool: "prior", stage: Stage.PRIOR, maxBatch: 4, prefetch: 4, batchSeconds: 0.25 },
  decoder: { pool: "decoder", stage: Stage.DECODER, maxBatch: 2, prefetch: 2, batchSeconds: 0.52 },
  upscale: { pool: "upscale", stage: Stage.UPSCALE_256, maxBatch: 1, prefetch: 1, batchSeconds: 1.0 },
};

export interface SimConfig {
  /** Workers per pool in each saturation run (SIM_WORKERS, default 1,8,64). */
  readonly workers: readonly number[];
  /** Pools measured at saturation, one after another (SIM_POOLS, default prior,decoder,upscale). */
  readonly pools: readonly Pool[];
  /** Steady-state window of each saturation run (SIM_SECONDS, default 20). */
  readonly seconds: number;
  /** Every service time is multiplied by this (SIM_TIME_SCALE, default 4), so that one 2-core machine can coordinate 192 workers. */
  readonly timeScale: number;
  /** Length of the KEDA replay (SIM_KEDA_SECONDS, default 210; 0 skips it). */
  readonly kedaSeconds: number;
  /**
   * KEDA's lagThreshold in the replay (SIM_KEDA_THRESHOLD): "batch" (the default, what deploy/k8s/keda.yaml uses:
   * one batch in service per replica) or "batch+prefetch" (the most a replica holds).
   */
  readonly kedaThreshold: "batch" | "batch+prefetch";
  /** Where scale-sim.json, scale-sim.md and keda-replay.png go (SIM_OUT, default out/bench under the repository). */
  readonly outDir: string;
}

const KNOWN = new Set(["SIM_WORKERS", "SIM_POOLS", "SIM_SECONDS", "SIM_TIME_SCALE", "SIM_KEDA_SECONDS", "SIM_KEDA_THRESHOLD", "SIM_OUT"]);

export function loadSimConfig(env: Env, defaultOutDir: string): SimConfig {
  const unknown = Object.keys(env).filter((k) => k.startsWith("SIM_") && !KNOWN.has(k));
  if (unknown.length > 0) throw new ConfigError(`unknown variable(s) ${unknown.join(", ")}; known: ${[...KNOWN].join(", ")}`);
  return {
    workers: list(env, "SIM_WORKERS", "1,8,64", (v) => {
      const n = Number(v);
      return Number.isInteger(n) && n >= 1 && n <= 256 ? n : undefined;
    }),
    pools: list(env, "SIM_POOLS", "prior,decoder,upscale", (v) => (v in POOL_PROFILES ? (v as Pool) : undefined)),
    seconds: int(env, "SIM_SECONDS", 20, 5, 600),
    timeScale: int(env, "SIM_TIME_SCALE", 4, 1, 100),
    kedaSeconds: int(env, "SIM_KEDA_SECONDS", 210, 0, 1800),
    kedaThreshold: threshold(env.SIM_KEDA_THRESHOLD || "batch"),
    outDir: env.SIM_OUT || defaultOutDir,
  };
}

function list<T>(env: Env, name: string, fallback: string, parse: (v: string) => T | undefined): T[] {
  const raw = env[name] || fallback;
  const items = raw.split(",").map((v) => v.trim());
  const parsed = items.map(parse);
  if (parsed.some((p) => p === undefined))
    throw new ConfigError(`${name}=${JSON.stringify(raw)}: cannot read ${items.filter((_, i) => parsed[i] === undefined).join(", ")}`);
  return parsed as T[];
}

function threshold(v: string): "batch" | "batch+prefetch" {
  if (v !== "batch" && v !== "batch+prefetch")
    throw new ConfigError(`SIM_KEDA_THRESHOLD=${JSON.stringify(v)} must be batch or batch+prefetch`);
  return v;
}
