import { describe, expect, it } from "vitest";
import { create, Stage, WorkerReportSchema, BatchReportSchema, type Pool } from "@unclip/protocol";
import { FarmError, GrpcStatus } from "@unclip/core";
import { AdmissionGate, type JobWork } from "../src/admission-gate.js";
import { ServiceRates } from "../src/service-rates.js";

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const oneImage64 = (seconds = 1): JobWork =>
  new Map<Pool, { tasks: number; seconds: number }>([
    ["prior", { tasks: 1, seconds }],
    ["decoder", { tasks: 1, seconds }],
  ]);

/** A stand-in for the NATS server's consumer counts: published tasks become visible to reads started later. */
class FakeQueue {
  tasks = 0;
  async read(): Promise<Map<Pool, number>> {
    const seen = this.tasks;
    await sleep(Math.random() * 5);
    return new Map([["prior", seen]]);
  }
}

describe("AdmissionGate", () => {
  it("cannot be overshot by concurrent submits: the check and the reservation are one step", async () => {
    const queue = new FakeQueue();
    queue.tasks = 1;
    const gate = new AdmissionGate(() => queue.read(), new ServiceRates(), { maxQueuedTasks: 11, maxQueueSeconds: 0 });
    const outcomes = await Promise.allSettled(
      Array.from({ length: 20 }, () =>
        gate.admit(oneImage64(), async () => {
          await sleep(Math.random() * 10);
          queue.tasks += 2;
        }),
      ),
    );
    const admitted = outcomes.filter((o) => o.status === "fulfilled").length;
    // 1 queued task + 5 jobs × 2 tasks = 11: the sixth would pass the limit.
    expect(admitted).toBe(5);
    expect(queue.tasks).toBe(11);
    const refused = outcomes.find((o) => o.status === "rejected") as PromiseRejectedResult;
    expect(refused.reason).toBeInstanceOf(FarmError);
    expect((refused.reason as FarmError).code).toBe(GrpcStatus.RESOURCE_EXHAUSTED);
    expect((refused.reason as FarmError).retryAfterMs).toBeGreaterThan(0);
  });

  it("lets a burst of submits share one backlog read, and reads again for a submit after it", async () => {
    let reads = 0;
    const gate = new AdmissionGate(
      async () => {
        reads++;
        await sleep(20);
        return new Map<Pool, number>([["prior", 0]]);
      },
      new ServiceRates(),
      { maxQueuedTasks: 1000, maxQueueSeconds: 0 },
    );
    await Promise.all(Array.from({ length: 50 }, () => gate.admit(oneImage64(), async () => undefined)));
    expect(reads).toBe(1);
    await gate.admit(oneImage64(), async () => undefined);
    expect(reads).toBe(2);
  });

  it("frees a reservation whose admission failed", async () => {
    const queue = new FakeQueue();
    queue.tasks = 1;
    const gate = new AdmissionGate(() => queue.read(), new ServiceRates(), { maxQueuedTasks: 3, maxQueueSeconds: 0 });
    await expect(gate.admit(oneImage64(), () => Promise.reject(new Error("publish failed")))).rejects.toThrow("publish failed");
    await expect(gate.admit(oneImage64(), async () => "ok")).resolves.toBe("ok");
  });

  it("always admits a job when the farm holds no work, however big the job", async () => {
    const gate = new AdmissionGate(async () => new Map(), new ServiceRates(), { maxQueuedTasks: 1, maxQueueSeconds: 1 });
    const eta = await gate.admit(oneImage64(50), async (etaSeconds) => etaSeconds);
    expect(eta).toBe(100);
  });

  it("refuses on the ETA, weighed by the job's work, with a retry hint of the excess", async () => {
    const rates = new ServiceRates();
    // Two decoder workers at 0.5 s per task.
    for (const worker of ["d1", "d2"]) {
      rates.observe(
        create(WorkerReportSchema, {
          pool: "decoder",
          worker,
          batch: create(BatchReportSchema, { stage: Stage.DECODER, tasks: 4, seconds: 2, steps: 50 }),
        }),
      );
    }
    const gate = new AdmissionGate(async () => new Map([["decoder", 100]]), rates, { maxQueuedTasks: 10_000, maxQueueSeconds: 30 });
    const decoderJob = (tasks: number): JobWork => new Map([["decoder", { tasks, seconds: tasks * rates.taskSeconds(Stage.DECODER, 0) }]]);
    // 100 queued × 0.5 s / 2 workers = 25 s, plus 4 × 0.5 / 2 = 1 s.
    await expect(gate.admit(decoderJob(4), async (eta) => eta)).resolves.toBeCloseTo(26, 5);
    const err = await gate.admit(decoderJob(24), async () => 0).catch((e: FarmError) => e);
    expect((err as FarmError).code).toBe(GrpcStatus.RESOURCE_EXHAUSTED);
    expect((err as FarmError).message).toMatch(/wait about \d+ s \(limit 30 s\)/);
    // The first job was published before this read began, so the read is taken to show it: 25 + 6 = 31 s, 1 s over.
    expect((err as FarmError).retryAfterMs).toBe(1000);
  });
});

describe("ServiceRates", () => {
  it("learns seconds per task and per step, and scales diffusion stages by the steps asked", () => {
    const rates = new ServiceRates();
    expect(rates.taskSeconds(Stage.DECODER, 0)).toBe(1);
    rates.observe(
      create(WorkerReportSchema, {
        pool: "decoder",
        worker: "d1",
        defaultSteps: { [Stage.DECODER]: 50 },
        batch: create(BatchReportSchema, { stage: Stage.DECODER, tasks: 8, seconds: 4, steps: 25 }),
      }),
    );
    expect(rates.taskSeconds(Stage.DECODER, 25)).toBeCloseTo(0.5);
    expect(rates.taskSeconds(Stage.DECODER, 0)).toBeCloseTo(1);
    expect(rates.poolTaskSeconds("decoder")).toBeCloseTo(0.5);
    expect(rates.liveWorkers("decoder")).toBe(1);
  });

  it("forgets workers not heard from for three report periods", () => {
    let now = 0;
    const rates = new ServiceRates(() => now);
    rates.observe(create(WorkerReportSchema, { pool: "prior", worker: "p1" }));
    now = 14_000;
    rates.observe(create(WorkerReportSchema, { pool: "prior", worker: "p2" }));
    expect(rates.liveWorkers("prior")).toBe(2);
    now = 16_000;
    expect(rates.liveWorkers("prior")).toBe(1);
  });
});
