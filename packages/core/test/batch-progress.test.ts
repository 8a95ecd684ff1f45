import { setTimeout as sleep } from "node:timers/promises";
import { describe, expect, it } from "vitest";
import { FarmError, GrpcStatus } from "../src/index.js";
import { BatchProgress } from "../src/batch-progress.js";

describe("batch progress", () => {
  it("keeps a batch alive while it reports progress within the limit", async () => {
    const progress = new BatchProgress(200);
    for (let i = 0; i < 6; i++) {
      await sleep(80);
      progress.progressed();
    }
    expect(progress.alive).toBe(true);
    expect(progress.signal.aborted).toBe(false);
    progress.dispose();
  });

  it("aborts a batch with no progress for the limit, with a retryable DEADLINE_EXCEEDED error", async () => {
    const progress = new BatchProgress(150);
    await sleep(60);
    progress.progressed();
    const started = Date.now();
    const err = await progress.stalled;
    expect(Date.now() - started).toBeGreaterThanOrEqual(140);
    expect(progress.alive).toBe(false);
    expect(progress.signal.reason).toBe(err);
    expect(err).toBeInstanceOf(FarmError);
    expect(err.code).toBe(GrpcStatus.DEADLINE_EXCEEDED);
    expect(err.retryable).toBe(true);
  });

  it("stops watching once the batch left the model", async () => {
    const progress = new BatchProgress(50);
    progress.dispose();
    await sleep(120);
    expect(progress.alive).toBe(true);
  });
});
