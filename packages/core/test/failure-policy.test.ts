import { describe, expect, it } from "vitest";
import { decideFailure, FarmError, GrpcStatus, retryWindowMs, backoffDelay } from "../src/index.js";

const settings = { maxDeliver: 8, backoffMs: [1000, 2000, 5000, 10_000, 30_000] };
const context = { attempt: 1, cancelled: false, stopping: false, stage: "decoder", index: 0 };
const unavailable = FarmError.unavailable("the object store did not answer within 10000 ms");

describe("the failure policy", () => {
  it("retries a transient error with the backoff of its delivery, the last delay repeating", () => {
    const delays = [1, 2, 3, 4, 5, 6, 7].map((attempt) => decideFailure(unavailable, { ...context, attempt }, settings));
    expect(delays.map((d) => d.action)).toEqual(Array(7).fill("retry"));
    expect(delays.map((d) => (d.action === "retry" ? d.delayMs : -1))).toEqual([1000, 2000, 5000, 10_000, 30_000, 30_000, 30_000]);
  });

  it("fails the job on the last delivery, saying how often and why", () => {
    expect(decideFailure(unavailable, { ...context, attempt: 8 }, settings)).toEqual({
      action: "fail",
      reason: "the decoder stage failed 8 times; last error: the object store did not answer within 10000 ms",
    });
  });

  it("fails a permanent error (bad input) at once, on the first delivery", () => {
    expect(decideFailure(FarmError.invalid("the image embedding has 3 values"), context, settings)).toEqual({
      action: "fail",
      reason: "the decoder stage refused image 0: the image embedding has 3 values",
    });
  });

  it("treats errors that are not ours through the one error mapping: socket errors retry, unknown ones retry too", () => {
    const refused = Object.assign(new Error("connect ECONNREFUSED 127.0.0.1:9000"), { code: "ECONNREFUSED" });
    expect(decideFailure(refused, context, settings)).toMatchObject({ action: "retry", delayMs: 1000 });
    const missing = Object.assign(new Error("The specified key does not exist."), { name: "S3Error", code: "NoSuchKey" });
    expect(decideFailure(missing, context, settings)).toMatchObject({ action: "fail" });
  });

  it("drops a cancelled job's task whatever the error, and releases at once when the worker is forced to stop", () => {
    expect(decideFailure(unavailable, { ...context, cancelled: true }, settings).action).toBe("cancel");
    expect(decideFailure(new FarmError(GrpcStatus.CANCELLED, "job cancelled"), context, settings).action).toBe("cancel");
    expect(decideFailure(unavailable, { ...context, stopping: true, attempt: 8 }, settings)).toEqual({
      action: "retry",
      delayMs: 0,
      reason: "worker shutting down",
    });
  });

  it("waits at least as long as an error asks", () => {
    const busy = new FarmError(GrpcStatus.UNAVAILABLE, "busy", true, { retryAfterMs: 7000 });
    expect(backoffDelay(1, settings.backoffMs, busy)).toBe(7000);
    expect(backoffDelay(1, [], undefined)).toBe(0);
  });

  it("keeps retrying through a 60 s outage with the defaults: 108 s of delays over 8 deliveries", () => {
    expect(retryWindowMs(settings)).toBe(1000 + 2000 + 5000 + 10_000 + 30_000 + 30_000 + 30_000);
    expect(retryWindowMs(settings)).toBeGreaterThan(60_000);
    // The old policy (1 s fixed, 5 deliveries) gave up after 4 s.
    expect(retryWindowMs({ maxDeliver: 5, backoffMs: [1000] })).toBe(4000);
  });
});
