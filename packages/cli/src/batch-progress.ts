import { Presets, SingleBar } from "cli-progress";
import { BatchState, type Batch } from "@unclip/protocol";

/**
 * Terminal progress of a batch: one bar of ended items with the counts and the gateway's ETA. Without a terminal it
 * writes a line when the counts change, at most every 10 s, so logs stay short.
 */
export class BatchProgress {
  private bar?: SingleBar;
  private lastCounts = "";
  private lastLineAt = 0;

  constructor(private readonly enabled = process.stderr.isTTY === true) {}

  update(batch: Batch): void {
    const ended = batch.succeeded + batch.failed + batch.cancelled;
    const payload = {
      id: batch.batchId,
      succeeded: batch.succeeded,
      failed: batch.failed,
      cancelled: batch.cancelled,
      when: batch.state === BatchState.RUNNING ? formatEta(batch.etaSeconds) : batchStateName(batch.state),
    };
    if (this.enabled) {
      if (!this.bar) {
        this.bar = new SingleBar(
          {
            format: " batch {id} | {bar} | {value}/{total} ended ({succeeded} ok, {failed} failed, {cancelled} cancelled) | {when}",
            hideCursor: true,
            clearOnComplete: false,
            stream: process.stderr,
          },
          Presets.shades_classic,
        );
        this.bar.start(Math.max(batch.total, 1), ended, payload);
      } else {
        this.bar.setTotal(Math.max(batch.total, 1));
        this.bar.update(ended, payload);
      }
      return;
    }
    const counts = `${ended}/${batch.total} ended (${batch.succeeded} ok, ${batch.failed} failed, ${batch.cancelled} cancelled)`;
    if (counts !== this.lastCounts && Date.now() - this.lastLineAt >= 10_000) {
      process.stderr.write(`batch ${batch.batchId}: ${counts}, ${payload.when}\n`);
      this.lastCounts = counts;
      this.lastLineAt = Date.now();
    }
  }

  stop(): void {
    this.bar?.stop();
    this.bar = undefined;
  }
}

/** "running", "completed", … */
export const batchStateName = (state: BatchState): string => (BatchState[state] ?? "unspecified").toLowerCase();

/** "ETA 1 m 05 s"; "ETA unknown" before the gateway has a rate. */
export function formatEta(seconds: number): string {
  if (!(seconds > 0) || !Number.isFinite(seconds)) return "ETA unknown";
  const s = Math.ceil(seconds);
  if (s < 60) return `ETA ${s} s`;
  if (s < 3600) return `ETA ${Math.floor(s / 60)} m ${String(s % 60).padStart(2, "0")} s`;
  return `ETA ${Math.floor(s / 3600)} h ${String(Math.floor(s / 60) % 60).padStart(2, "0")} m`;
}
