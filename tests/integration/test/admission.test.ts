import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { status, type ServiceError } from "@grpc/grpc-js";
import { UnclipClient } from "@unclip/cli";
import { connectFarm, JobStore, openBucket, type FarmConnection } from "@unclip/core";
import { startService, SupervisedService } from "@unclip/devstack";
import { create, JobState, SamplingOptionsSchema, type Job, type Queued } from "@unclip/protocol";
import { collect, generateRequest, startTestFarm, terminal } from "./farm-fixture.js";

let env: Awaited<ReturnType<typeof startTestFarm>>;
beforeAll(async () => {
  env = await startTestFarm();
});
afterAll(async () => {
  await env?.stop();
});

describe("admission on the whole farm's backlog", () => {
  it("gives every queued job an ETA in seconds", async () => {
    const events = await collect(env.client.generate(generateRequest("a red circle")));
    expect(events[0]!.event.case).toBe("queued");
    const queued = events[0]!.event.value as Queued;
    expect(queued.etaSeconds).toBeGreaterThan(0);
    expect(Number.isFinite(queued.etaSeconds)).toBe(true);
    expect(terminal(events).case).toBe("completed");
  });

  it("refuses with RESOURCE_EXHAUSTED and a retry-after-ms trailer while tasks in flight fill the limit", async () => {
    // A second gateway with a tiny limit; the workers keep running, so the backlog is in flight, not pending.
    const gateway = await startService("gateway", { ...env.farm.env, UNCLIP_GRPC_PORT: "0", UNCLIP_MAX_QUEUED_TASKS: "2" });
    const client = new UnclipClient(`127.0.0.1:${String(gateway.ready.grpcPort)}`);
    try {
      const slow = generateRequest("a slow job", { sampling: create(SamplingOptionsSchema, { priorSteps: 4, decoderSteps: 1000 }) });
      const running = client.generate(slow)[Symbol.asyncIterator]();
      const queued = await running.next();
      expect(queued.value.event.case).toBe("queued");
      let refused: ServiceError | undefined;
      try {
        await collect(client.generate(generateRequest("one too many")));
      } catch (err) {
        refused = err as ServiceError;
      }
      expect(refused?.code).toBe(status.RESOURCE_EXHAUSTED);
      // The slow job's prior task, or its decoder task published just before the prior's ack: 1 or 2 in the count.
      expect(refused?.details).toMatch(/the farm's queues hold [12] tasks and this job adds 2 \(limit 2\); retry in [\d.]+ s/);
      const retryAfter = Number(refused?.metadata.get("retry-after-ms")[0]);
      expect(Number.isInteger(retryAfter)).toBe(true);
      expect(retryAfter).toBeGreaterThan(0);
      await client.cancelJob(queued.value.jobId);
    } finally {
      client.close();
      await gateway.stop();
    }
  });
});

describe("admission that its gateway did not finish", () => {
  let conn: FarmConnection;
  beforeAll(async () => {
    conn = await connectFarm(env.farm.nats.url, "admission-test");
  });
  afterAll(async () => {
    await conn?.nc.close();
  });

  /** The record of the one job with this prompt, once it exists. */
  const jobByPrompt = async (prompt: string, timeoutMs = 30_000): Promise<Job> => {
    const jobs = new JobStore(conn.jobs);
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      for await (const key of await conn.jobs.keys()) {
        const job = await jobs.get(key);
        if (job?.prompt === prompt) return job;
      }
      if (Date.now() > deadline) throw new Error(`no job record with prompt ${JSON.stringify(prompt)}`);
      await new Promise((r) => setTimeout(r, 200));
    }
  };

  const waitFor = async (jobId: string, done: (j: Job) => boolean, timeoutMs: number): Promise<Job> => {
    const jobs = new JobStore(conn.jobs);
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const job = (await jobs.get(jobId))!;
      if (done(job) || Date.now() > deadline) return job;
      await new Promise((r) => setTimeout(r, 250));
    }
  };

  /** Admits through a second, supervised gateway that SIGKILLs itself at `point`; returns the moment it died. */
  const admitThroughDoomedGateway = async (point: string, prompt: string) => {
    const gateway = await SupervisedService.start({
      name: "doomed-gateway",
      start: () => startService("gateway", { ...env.farm.env, UNCLIP_GRPC_PORT: "0", UNCLIP_FAULT_POINTS: `${point}=1` }),
    });
    const client = new UnclipClient(`127.0.0.1:${String(gateway.current.ready.grpcPort)}`);
    const died = new Promise<number>((resolve) => gateway.once("exit", () => resolve(Date.now())));
    const call = collect(client.generate(generateRequest(prompt, { numImages: 2 }))).catch((err: ServiceError) => err);
    const killedAt = await died;
    expect(await call).toMatchObject({ code: status.UNAVAILABLE });
    client.close();
    return { gateway, killedAt };
  };

  it("publishes the tasks of a job whose gateway died between record and publish: it succeeds within 60 s", async () => {
    const prompt = "orphaned after its record";
    const { gateway, killedAt } = await admitThroughDoomedGateway("admission-after-record", prompt);
    try {
      const orphan = await jobByPrompt(prompt);
      // Nothing was published: without the reconciler the job would stay QUEUED for ever.
      expect(orphan.state).toBe(JobState.QUEUED);
      expect(orphan.queuedAtMs).toBe(0n);
      const job = await waitFor(orphan.jobId, (j) => j.state === JobState.SUCCEEDED, 60_000 - (Date.now() - killedAt));
      expect(JobState[job.state]).toBe("SUCCEEDED");
      expect(Date.now() - killedAt).toBeLessThan(60_000);
      expect(job.images.map((i) => i.index)).toEqual([0, 1]);
      expect(job.queuedAtMs).toBeGreaterThan(0n);
      // The restarted gateway and the farm's own one both reconcile: exactly one of them took the orphan.
      const repaired = [env.farm.gateway.current, gateway.current].flatMap((p) =>
        p.logs.filter((l) => l.jobId === orphan.jobId && l.msg === "unfinished admission: tasks published again"),
      );
      expect(repaired).toHaveLength(1);
    } finally {
      await gateway.stop();
    }
  });

  it("runs a job whose gateway died after publishing, and clears its unfinished admission within 60 s", async () => {
    const prompt = "orphaned after its publish";
    const { gateway, killedAt } = await admitThroughDoomedGateway("admission-after-publish", prompt);
    try {
      const orphan = await jobByPrompt(prompt);
      expect(orphan.queuedAtMs).toBe(0n);
      const job = await waitFor(orphan.jobId, (j) => j.state === JobState.SUCCEEDED, 60_000);
      expect(JobState[job.state]).toBe("SUCCEEDED");
      const pending = await openBucket(conn.nc, conn.jsm, "farm_admissions", { ttlSeconds: 60, replicas: 1 });
      const deadline = killedAt + 60_000;
      while ((await pending.get(orphan.jobId)) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 500));
      expect(await pending.get(orphan.jobId)).toBeNull();
      expect(Date.now() - killedAt).toBeLessThan(60_000);
    } finally {
      await gateway.stop();
    }
  });
});
