import type { KedaReplay } from "./keda-replay.js";
import type { SaturationResult } from "./saturation-run.js";

/** Targets at 64 workers per pool (GitHub issue 13, item 6). */
export const TARGET_RATIO = 0.95;
export const TARGET_IDLE_MS = 1000;

export function saturationTable(results: readonly SaturationResult[]): string {
  const lines = [
    "| pool | workers | batch + prefetch | s per batch | ideal tasks/s | tasks/s | ratio | utilisation | queue wait p50 / p99 (s) | mean gap between batches (ms) | longest idle while pending (ms) | S3 put p50 / p99 (ms) | min pending | sim CPU (cores) | machine CPU busy |",
    "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
  ];
  for (const r of results) {
    lines.push(
      `| ${r.pool} | ${r.workers} | ${r.maxBatch} + ${r.prefetch} | ${r.batchSeconds.toFixed(2)} | ${r.idealTasksPerSecond.toFixed(1)} | ${r.tasksPerSecond.toFixed(1)} | ` +
        `${r.ratio.toFixed(3)} | ${r.utilisation.toFixed(3)} | ${(r.queueWaitP50Ms / 1000).toFixed(2)} / ${(r.queueWaitP99Ms / 1000).toFixed(2)} | ` +
        `${r.meanIdleGapMs.toFixed(0)} | ${r.longestIdleWhilePendingMs.toFixed(0)} | ${puts(r)} | ${r.minPending} | ${r.simCpuCores.toFixed(2)} | ${(r.machineCpuBusy * 100).toFixed(0)} % |`,
    );
  }
  return lines.join("\n");
}

function puts(r: SaturationResult): string {
  return Number.isNaN(r.s3PutP50Ms) ? "–" : `${r.s3PutP50Ms.toFixed(0)} / ${r.s3PutP99Ms.toFixed(0)}`;
}

/** One line per pool run at the largest worker count: were the targets met? */
export function verdicts(results: readonly SaturationResult[]): string[] {
  const largest = Math.max(...results.map((r) => r.workers));
  return results
    .filter((r) => r.workers === largest)
    .map((r) => {
      const ok = r.ratio >= TARGET_RATIO && r.longestIdleWhilePendingMs <= TARGET_IDLE_MS && r.minPending > 0;
      return (
        `${ok ? "MET" : "MISSED"}: ${r.pool} at ${r.workers} workers: throughput ${r.ratio.toFixed(3)} of ideal (target ≥ ${TARGET_RATIO}), ` +
        `longest idle while tasks waited ${r.longestIdleWhilePendingMs.toFixed(0)} ms (target ≤ ${TARGET_IDLE_MS}), ` +
        `${r.minPending > 0 ? "saturated throughout" : "NOT saturated: the queue ran empty in the window"}`
      );
    });
}

export function kedaSummary(replay: KedaReplay): string {
  const decisions = replay.decisions.map((d) => `${d.t.toFixed(0)} s: lag ${d.lag} → ${d.replicas}`).join("; ");
  const peakWait = Math.max(...replay.waits.map((w) => w.p99Seconds));
  return (
    `KEDA replay (${replay.pool}, lagThreshold ${replay.lagThreshold}, step ${replay.stepStart}–${replay.stepEnd} s): ` +
    `decisions ${decisions}. Highest queue wait p99 in a 5 s bin: ${peakWait.toFixed(1)} s. ` +
    `Tasks dead-lettered after max_deliver, failing their jobs: ${replay.deadLetteredAt.length}` +
    `${replay.deadLetteredAt.length > 0 ? ` (at ${replay.deadLetteredAt.map((t) => t.toFixed(0)).join(", ")} s)` : ""}; ` +
    `worker.stop() failures ${replay.stopErrors.length}${replay.stopErrors[0] ? ` (first: ${replay.stopErrors[0].split("\n").slice(0, 2).join(" ")})` : ""}.`
  );
}
