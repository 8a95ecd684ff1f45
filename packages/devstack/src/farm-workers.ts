import { ConfigError } from "@unclip/core";
import type { Pool } from "@unclip/protocol";

export const POOLS: readonly Pool[] = ["prior", "decoder", "upscale"];

/** Most worker processes of one pool the launcher starts on one machine. */
export const MAX_WORKERS_PER_POOL = 32;

const EXAMPLE = "prior=1,decoder=3,upscale=2";

/**
 * Parses UNCLIP_FARM_WORKERS: how many worker processes of each pool the launcher starts, as `pool=count` pairs
 * separated by commas (e.g. "prior=1,decoder=3,upscale=2"; counts 1–32). Pools it does not name are left out of the
 * result. A bad value throws a ConfigError that names the variable.
 */
export function parseFarmWorkers(value: string | undefined, variable = "UNCLIP_FARM_WORKERS"): Partial<Record<Pool, number>> {
  const counts: Partial<Record<Pool, number>> = {};
  if (value === undefined) return counts;
  const bad = (why: string) => new ConfigError(`${variable}=${JSON.stringify(value)}: ${why} (expected e.g. "${EXAMPLE}")`);
  for (const part of value.split(",")) {
    if (part.trim() === "") continue;
    const m = /^\s*([^=\s]+)\s*=\s*([^=\s]*)\s*$/.exec(part);
    if (!m) throw bad(`"${part.trim()}" is not pool=count`);
    const [, pool, count] = m as unknown as [string, string, string];
    if (!POOLS.includes(pool as Pool)) throw bad(`unknown pool "${pool}"; the pools are ${POOLS.join(", ")}`);
    if (counts[pool as Pool] !== undefined) throw bad(`${pool} is named twice`);
    counts[pool as Pool] = checkCount(count, () => bad(`the ${pool} count must be an integer from 1 to ${MAX_WORKERS_PER_POOL}`));
  }
  return counts;
}

/**
 * Worker processes per pool: `override` (FarmStackOptions.workers) wins over UNCLIP_FARM_WORKERS pool by pool, and a
 * pool named in neither gets one.
 */
export function farmWorkerCounts(
  env: Readonly<Record<string, string | undefined>> = process.env,
  override: Partial<Record<Pool, number>> = {},
): Record<Pool, number> {
  const fromEnv = parseFarmWorkers(env.UNCLIP_FARM_WORKERS);
  const counts = {} as Record<Pool, number>;
  for (const pool of POOLS) {
    const given = override[pool];
    counts[pool] =
      given === undefined
        ? (fromEnv[pool] ?? 1)
        : checkCount(String(given), () => new ConfigError(`workers.${pool}=${given} must be an integer from 1 to ${MAX_WORKERS_PER_POOL}`));
  }
  for (const key of Object.keys(override)) {
    if (!POOLS.includes(key as Pool)) throw new ConfigError(`workers.${key}: unknown pool; the pools are ${POOLS.join(", ")}`);
  }
  return counts;
}

function checkCount(count: string, error: () => Error): number {
  const n = Number(count);
  if (!/^\d+$/.test(count) || n < 1 || n > MAX_WORKERS_PER_POOL) throw error();
  return n;
}
