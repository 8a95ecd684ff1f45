import { readFile } from "node:fs/promises";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { create, JobState, SamplingOptionsSchema, Stage, type Job, type JobEvent } from "@unclip/protocol";
import { generateRequest, startTestFarm, terminal } from "./farm-fixture.js";

/** Decoder tasks in the burst (one-image jobs), and the decoder workers that share them in the end. */
const TASKS = 24;
const DECODERS = 3;

let env: Awaited<ReturnType<typeof startTestFarm>>;
beforeAll(async () => {
  // The launcher's variable: the workers option below wins over it, and no service may see it.
  process.env.UNCLIP_FARM_WORKERS = "prior=1,decoder=3,upscale=3";
  env = await startTestFarm({
    // One decoder to begin with; the test scales the pool out while the burst waits. Two upscale workers only to
    // see that a pool starts N named processes.
    workers: { decoder: 1, upscale: 2 },
    // A decoder worker holds at most its batch plus its prefetch (4 tasks); the rest stays in the stream for others.
    serviceEnv: { "decoder-worker": { UNCLIP_MAX_BATCH: "2", UNCLIP_PREFETCH: "2" } },
  });
});
afterAll(async () => {
  delete process.env.UNCLIP_FARM_WORKERS;
  await env?.stop();
});

describe("a pool scaled out to several worker processes", () => {
  it("starts the requested worker processes of a pool, each named, and keeps the launcher's variables to itself", async () => {
    const upscalers = env.farm.workers("upscale");
    expect(upscalers.map((w) => w.name)).toEqual(["upscale-worker-1", "upscale-worker-2"]);
    expect(new Set(upscalers.map((w) => w.current.child.pid)).size).toBe(2);
    expect(env.farm.services().map((s) => s.name)).toEqual([
      "gateway",
      "prior-worker-1",
      "decoder-worker-1",
      ...upscalers.map((w) => w.name),
    ]);
    for (const s of env.farm.services()) {
      const environ = (await readFile(`/proc/${String(s.current.child.pid)}/environ`, "utf8")).split("\0");
      expect(
        environ.filter((v) => v.startsWith("UNCLIP_FARM_WORKERS=")),
        s.name,
      ).toEqual([]);
      if (s.name !== "gateway") expect(environ, s.name).toContain(`UNCLIP_WORKER_NAME=${s.name}`);
    }
  });

  it("shares a waiting burst of decoder tasks with the decoder workers added while it waits", async () => {
    // Each job's events; `queued` resolves once the prior has handed every job's decoder task on.
    let priorDone = 0;
    let allQueued!: () => void;
    const queued = new Promise<void>((resolve) => (allQueued = resolve));
    const jobs = Array.from({ length: TASKS }, async (_, i) => {
      const events: JobEvent[] = [];
      const request = generateRequest(`a shape number ${i}`, {
        seed: BigInt(1000 + i),
        // Enough steps that the first decoder is still busy with the burst when the others are up.
        sampling: create(SamplingOptionsSchema, { priorSteps: 4, decoderSteps: 400 }),
      });
      for await (const e of env.client.generate(request)) {
        events.push(e);
        if (e.event.case === "stageFinished" && e.event.value.timing?.stage === Stage.PRIOR && ++priorDone === TASKS) allQueued();
      }
      return events;
    });
    await Promise.race([queued, Promise.all(jobs)]); // (the latter only when jobs end early: the checks below say why)
    const added = await Promise.all([env.farm.addWorker("decoder"), env.farm.addWorker("decoder")]);
    const names = Array.from({ length: DECODERS }, (_, i) => `decoder-worker-${i + 1}`);
    expect(env.farm.workers("decoder").map((w) => w.name)).toEqual(names);
    expect(added.map((w) => w.name)).toEqual(names.slice(1));
    const tasksBy = new Map<string, number>();
    for (const events of await Promise.all(jobs)) {
      const end = terminal(events);
      expect(end.case).toBe("completed");
      const job = end.value as Job;
      expect(job.state).toBe(JobState.SUCCEEDED);
      const decoder = job.timings.filter((t) => t.stage === Stage.DECODER);
      expect(decoder).toHaveLength(1);
      tasksBy.set(decoder[0]!.worker, (tasksBy.get(decoder[0]!.worker) ?? 0) + 1);
    }
    const spread = JSON.stringify(Object.fromEntries([...tasksBy].sort()));
    expect([...tasksBy.keys()].sort(), spread).toEqual(names);
    for (const name of names) expect(tasksBy.get(name), `${name} in ${spread}`).toBeGreaterThanOrEqual(Math.ceil(TASKS * 0.2));
  });
});
