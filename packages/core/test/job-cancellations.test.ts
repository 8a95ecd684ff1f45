import { describe, expect, it } from "vitest";
import { FarmError, GrpcStatus } from "../src/index.js";
import { JobCancellations } from "../src/job-cancellations.js";

describe("job cancellations", () => {
  it("abort a batch's signal once every job of the batch is cancelled, with a CANCELLED error", () => {
    const cancellations = new JobCancellations();
    const { signal, release } = cancellations.watch(["a", "b", "a"]);
    cancellations.cancel("a");
    expect(signal.aborted).toBe(false);
    expect(cancellations.isCancelled("a")).toBe(true);
    cancellations.cancel("b");
    expect(signal.aborted).toBe(true);
    expect(signal.reason).toBeInstanceOf(FarmError);
    expect((signal.reason as FarmError).code).toBe(GrpcStatus.CANCELLED);
    release();
  });

  it("abort at once a batch whose jobs were all cancelled before it started", () => {
    const cancellations = new JobCancellations();
    cancellations.cancel("c");
    expect(cancellations.watch(["c"]).signal.aborted).toBe(true);
    expect(cancellations.watch(["c", "d"]).signal.aborted).toBe(false);
  });

  it("reach every batch that still holds the job, and no batch that let it go", () => {
    const cancellations = new JobCancellations();
    const first = cancellations.watch(["e"]);
    const second = cancellations.watch(["e"]);
    first.release();
    first.release();
    cancellations.cancel("e");
    expect(first.signal.aborted).toBe(false);
    expect(second.signal.aborted).toBe(true);
    second.release();
  });
});
