import { status } from "@grpc/grpc-js";
import { connectFarm, createLogger, FarmError, JobStore, type FarmConnection } from "@unclip/core";
import { startNatsServer, type NatsServerHandle } from "@unclip/devstack";
import { create, ImageRefSchema, JobSchema, JobState } from "@unclip/protocol";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import { TenantQuota } from "../src/tenant-quota.js";

let nats: NatsServerHandle;
let conn: FarmConnection;
let jobs: JobStore;
beforeAll(async () => {
  nats = await startNatsServer();
  conn = await connectFarm(nats.url, "tenant-quota-test");
  jobs = new JobStore(conn.jobs);
});
afterAll(async () => {
  await conn?.nc.close();
  await nats?.stop();
});

const log = createLogger("tenant-quota-test", "silent");
const LIMITS: Record<string, number> = { alpha: 8 };
const job = (jobId: string, tenant: string, numImages: number, state = JobState.QUEUED) =>
  create(JobSchema, { jobId, tenant, numImages, state, updatedAtMs: BigInt(Date.now()) });
const refusal = (f: () => unknown) => {
  try {
    f();
  } catch (err) {
    return [(err as FarmError).code, (err as FarmError).message];
  }
  return "admitted";
};

describe("TenantQuota", () => {
  it("counts the unfinished images already in the bucket when it starts, and follows their records", async () => {
    await jobs.create(job("q-alpha-1", "alpha", 5));
    await jobs.create(job("q-alpha-done", "alpha", 8, JobState.SUCCEEDED));
    await jobs.create(job("q-bravo-1", "bravo", 8));
    const quota = await TenantQuota.start(conn.jobs, (t) => LIMITS[t], 3_600_000, log);
    try {
      expect(quota.openImages("alpha")).toBe(5);
      expect(quota.openImages("bravo")).toBe(8);
      expect(refusal(() => quota.reserve("alpha", "q-alpha-2", 4))).toEqual([
        status.RESOURCE_EXHAUSTED,
        "tenant alpha has 5 image(s) queued or rendering; 4 more would pass its quota of 8 (max_queued_images): retry when some have finished",
      ]);
      // A tenant without a limit is only counted.
      expect(refusal(() => quota.reserve("bravo", "q-bravo-2", 8))).toBe("admitted");
      // Images done no longer count; an ended job not at all.
      await jobs.update("q-alpha-1", (j) => ({
        ...j,
        images: [create(ImageRefSchema, { index: 0 }), create(ImageRefSchema, { index: 1 })],
      }));
      await vi.waitFor(() => expect(quota.openImages("alpha")).toBe(3));
      expect(refusal(() => quota.reserve("alpha", "q-alpha-2", 4))).toBe("admitted");
      expect(quota.openImages("alpha")).toBe(7);
      await jobs.update("q-alpha-1", (j) => ({ ...j, state: JobState.CANCELLED }));
      await vi.waitFor(() => expect(quota.openImages("alpha")).toBe(4));
    } finally {
      quota.stop();
    }
  });

  it("gives back a reservation whose admission failed, and counts a job admitted twice once", async () => {
    const quota = await TenantQuota.start(conn.jobs, (t) => (t === "charlie" ? 8 : undefined), 3_600_000, log);
    try {
      const undo = quota.reserve("charlie", "q-charlie-1", 8);
      expect(refusal(() => quota.reserve("charlie", "q-charlie-2", 1))).toEqual([
        status.RESOURCE_EXHAUSTED,
        expect.stringMatching(/has 8 image/),
      ]);
      undo();
      expect(quota.openImages("charlie")).toBe(0);
      quota.reserve("charlie", "q-charlie-3", 8);
      await jobs.create(job("q-charlie-3", "charlie", 8));
      await vi.waitFor(() => expect(refusal(() => quota.reserve("charlie", "q-charlie-3", 8))).toBe("admitted"));
      expect(quota.openImages("charlie")).toBe(8);
    } finally {
      quota.stop();
    }
  });
});
