import type { BacklogSample } from "./backlog-sampler.js";
import type { BatchRecord } from "./synthetic-handler.js";

/** A span of wall-clock time in epoch ms. */
export interface Window {
  readonly startMs: number;
  readonly endMs: number;
}

export interface IdleGaps {
  /** Mean time from the end of a worker's batch to the start of its next: the runtime's cost per batch. */
  readonly meanMs: number;
  /** The longest such gap while tasks of the pool waited on the server throughout. */
  readonly longestWhilePendingMs: number;
}

/**
 * A worker's idle gap runs from the end of one batch to the start of its next (or, if none started, to the last
 * backlog reading). Gaps that overlap the window count. One counts as "while pending" when every reading from the
 * last one before the gap to its end shows pending > 0: tasks waited that this worker did not take.
 */
export function idleGaps(workers: readonly (readonly BatchRecord[])[], samples: readonly BacklogSample[], window: Window): IdleGaps {
  const lastReading = samples.at(-1)?.atMs ?? window.endMs;
  let total = 0;
  let count = 0;
  let longest = 0;
  for (const batches of workers) {
    batches.forEach((batch, i) => {
      const from = batch.endMs;
      const to = batches[i + 1]?.startMs ?? Math.max(from, lastReading);
      if (to <= window.startMs || from >= window.endMs) return;
      total += to - from;
      count++;
      if (to - from > longest && pendingThroughout(samples, from, to)) longest = to - from;
    });
  }
  return { meanMs: count > 0 ? total / count : NaN, longestWhilePendingMs: longest };
}

function pendingThroughout(samples: readonly BacklogSample[], fromMs: number, toMs: number): boolean {
  let i = firstAtOrAfter(samples, fromMs);
  if (i > 0) i--; // the reading in force when the gap began
  for (; i < samples.length && samples[i]!.atMs <= toMs; i++) if (samples[i]!.pending === 0) return false;
  return true;
}

function firstAtOrAfter(samples: readonly BacklogSample[], ms: number): number {
  let lo = 0;
  let hi = samples.length;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if (samples[mid]!.atMs < ms) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}
