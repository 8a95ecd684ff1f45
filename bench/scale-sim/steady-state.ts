import type { BacklogSample } from "./backlog-sampler.js";
import { idleGaps, type Window } from "./idle-tracker.js";
import type { BatchRecord } from "./synthetic-handler.js";

export interface SteadyStateStats {
  readonly windowSeconds: number;
  readonly tasksPerSecond: number;
  /** Model-busy time over window time, mean over workers. */
  readonly utilisation: number;
  readonly meanBatchSize: number;
  readonly queueWaitP50Ms: number;
  readonly queueWaitP99Ms: number;
  /** Mean time between a worker's batches: what the runtime spends per batch (acks, KV, S3, pulls). */
  readonly meanIdleGapMs: number;
  readonly longestIdleWhilePendingMs: number;
  /** Fewest tasks waiting on the server at any reading in the window: above 0 means the pool stayed saturated. */
  readonly minPending: number;
}

/**
 * The steady state begins one batch time after the last worker began its first batch (every worker is running and
 * has pulled once) and lasts `seconds`; the run stops its workers only after it, so neither warm-up nor drain is in it.
 */
export function steadyWindow(workers: readonly (readonly BatchRecord[])[], batchMs: number, seconds: number): Window {
  const startMs = Math.max(...workers.map((b) => b[0]!.startMs)) + batchMs;
  return { startMs, endMs: startMs + seconds * 1000 };
}

/** A batch that runs across an edge of the window counts in proportion to the part of it inside. */
export function steadyStateStats(
  workers: readonly (readonly BatchRecord[])[],
  samples: readonly BacklogSample[],
  window: Window,
): SteadyStateStats {
  const windowMs = window.endMs - window.startMs;
  const inside = (b: BatchRecord) => Math.max(0, Math.min(b.endMs, window.endMs) - Math.max(b.startMs, window.startMs));
  let tasks = 0;
  let busyShare = 0;
  const started: BatchRecord[] = [];
  for (const batches of workers) {
    let busy = 0;
    for (const b of batches) {
      busy += inside(b);
      tasks += (b.size * inside(b)) / Math.max(1, b.endMs - b.startMs);
      if (b.startMs >= window.startMs && b.startMs < window.endMs) started.push(b);
    }
    busyShare += busy / windowMs;
  }
  const waits = started.flatMap((b) => b.waitsMs).sort((a, b) => a - b);
  const gaps = idleGaps(workers, samples, window);
  const pendings = samples.filter((s) => s.atMs >= window.startMs && s.atMs <= window.endMs).map((s) => s.pending);
  return {
    windowSeconds: windowMs / 1000,
    tasksPerSecond: tasks / (windowMs / 1000),
    utilisation: busyShare / workers.length,
    meanBatchSize: started.reduce((n, b) => n + b.size, 0) / Math.max(1, started.length),
    queueWaitP50Ms: percentile(waits, 0.5),
    queueWaitP99Ms: percentile(waits, 0.99),
    meanIdleGapMs: gaps.meanMs,
    longestIdleWhilePendingMs: gaps.longestWhilePendingMs,
    minPending: pendings.length > 0 ? Math.min(...pendings) : 0,
  };
}

/** Nearest-rank percentile of sorted values (NaN when empty). */
export function percentile(sorted: readonly number[], p: number): number {
  return sorted.length === 0 ? NaN : sorted[Math.max(0, Math.ceil(p * sorted.length) - 1)]!;
}
