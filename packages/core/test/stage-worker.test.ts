import { setTimeout as sleep } from "node:timers/promises";
import { startNatsServer, type NatsServerHandle } from "@unclip/devstack";
import { create, encodeTensor, toBinary, JobParamsSchema, JobSchema, JobState, Stage, StageTaskSchema } from "@unclip/protocol";
import { pino } from "pino";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  armFaultPoints,
  connectFarm,
  HAND_OFF_FAULT_POINTS,
  createRegistry,
  JobStore,
  loadCommonConfig,
  ObjectStore,
  StageWorker,
  subscribeEvents,
  TASK_STREAM,
  taskSubject,
  WorkerMetrics,
  type FarmConnection,
  type StageHandler,
  type StageWorkerOptions,
  type TaskContext,
} from "../src/index.js";

const log = pino({ level: "silent" });
let nats: NatsServerHandle;
const connections: FarmConnection[] = [];
beforeAll(async () => {
  nats = await startNatsServer();
});
afterAll(async () => {
  for (const c of connections) await c.nc.close();
  await nats?.stop();
});

const options = (workerName: string): StageWorkerOptions => ({
  maxBatch: 1,
  prefetch: 0,
  maxWaitMs: 0,
  stepEventMs: 0,
  ackWaitMs: 5000,
  maxDeliver: 8,
  retryBackoffMs: [200],
  stallMs: 600,
  graceMs: 1000,
  workerName,
});

/** A prior-pool handler whose runs the test scripts: `hang` never returns until released, ignoring its signal. */
function scriptedHandler(behaviour: "hang" | "answer") {
  const runs: { attempt: number; signal: AbortSignal }[] = [];
  let release: () => void = () => undefined;
  const released = new Promise<void>((resolve) => (release = resolve));
  const handler: StageHandler = {
    pool: "prior",
    bundle: "scripted@1",
    batchKey: () => "k",
    run: async (batch: readonly TaskContext[], signal: AbortSignal) => {
      runs.push({ attempt: batch[0]!.attempt, signal });
      if (behaviour === "hang") await released;
      return batch.map(() => ({ embedding: encodeTensor({ dtype: "float32", shape: [1, 2], data: new Float32Array([1, 2]) }) }));
    },
  };
  return { handler, runs, release };
}

async function startWorker(name: string, handler: StageHandler, overrides: Partial<StageWorkerOptions> = {}) {
  const conn = await connectFarm(nats.url, name);
  connections.push(conn);
  const store = new ObjectStore(loadCommonConfig({}, 0).s3);
  const registry = createRegistry(name);
  const worker = new StageWorker(conn, store, handler, { ...options(name), ...overrides }, log, new WorkerMetrics(registry));
  await worker.start();
  const outcomes = async () => {
    const counts: Record<string, number> = {};
    for (const v of (await registry.getSingleMetric("unclip_tasks_total")!.get()).values) counts[String(v.labels.outcome)] = v.value;
    return counts;
  };
  return { worker, conn, outcomes };
}

async function until(what: string, probe: () => boolean | Promise<boolean>, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await probe())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(25);
  }
}

describe("a batch that stops progressing", () => {
  it("is aborted and released to another worker, and its worker reports unhealthy until the model call returns", async () => {
    const stuck = scriptedHandler("hang");
    const a = await startWorker("worker-a", stuck.handler);
    const jobId = "5a11ed00-0000-4000-8000-000000000001";
    await new JobStore(a.conn.jobs).create(create(JobSchema, { jobId, state: JobState.QUEUED, numImages: 1 }));
    const task = create(StageTaskSchema, { jobId, route: [Stage.PRIOR, Stage.DECODER], params: create(JobParamsSchema, { prompt: "x" }) });
    await a.conn.js.publish(taskSubject("prior"), toBinary(StageTaskSchema, task));

    await until("worker A to run the task", () => stuck.runs.length === 1);
    expect(a.worker.running).toBe(true);
    const startedAt = Date.now();
    // No progress for stallMs: the batch's signal aborts with a retryable deadline error, and A reports unhealthy.
    await until("the stall", () => stuck.runs[0]!.signal.aborted);
    expect(Date.now() - startedAt).toBeGreaterThanOrEqual(500);
    expect((stuck.runs[0]!.signal.reason as Error).message).toMatch(/no progress for 600 ms/);
    await until("worker A to report unhealthy", () => !a.worker.running);

    // Worker B gets the released task (delivery 2) and hands it on, while A's model call still hangs.
    const healthy = scriptedHandler("answer");
    const b = await startWorker("worker-b", healthy.handler);
    await until("worker B to run the task", () => healthy.runs.length === 1);
    expect(healthy.runs[0]!.attempt).toBe(2);
    await until("the decoder task", async () => (await b.conn.jsm.streams.info(TASK_STREAM)).state.messages === 1);
    const next = await b.conn.jsm.streams.getMessage(TASK_STREAM, { last_by_subj: taskSubject("decoder") });
    expect(next).toBeTruthy();
    expect(stuck.runs).toHaveLength(1);
    expect(a.worker.running).toBe(false);

    // The hung call returns at last: A's late output is dropped (the task is B's now) and A takes tasks again.
    stuck.release();
    await until("worker A to recover", () => a.worker.running);
    await sleep(300);
    expect(await a.outcomes()).toEqual({ retried: 1 });
    expect(await b.outcomes()).toEqual({ ok: 1 });
    await Promise.all([a.worker.stop(), b.worker.stop()]);
  }, 60_000);
});

describe("the hand-off", () => {
  it("passes its fault points in order, between the steps they name", async () => {
    // Each point fires (probability 1); the stand-in for SIGKILL records where the process would have died.
    const order: string[] = [];
    armFaultPoints(new Map(HAND_OFF_FAULT_POINTS.map((name) => [name, 1])), log, { kill: (name) => order.push(name) });
    try {
      const answering = scriptedHandler("answer");
      const w = await startWorker("worker-c", answering.handler);
      const jobId = "5a11ed00-0000-4000-8000-000000000002";
      await new JobStore(w.conn.jobs).create(create(JobSchema, { jobId, state: JobState.QUEUED, numImages: 1 }));
      const task = create(StageTaskSchema, {
        jobId,
        route: [Stage.PRIOR, Stage.DECODER],
        params: create(JobParamsSchema, { prompt: "y" }),
      });
      await w.conn.js.publish(taskSubject("prior"), toBinary(StageTaskSchema, task));
      await until("the task to be handed on", async () => (await w.outcomes()).ok === 1);
      expect(order).toEqual(["before-store", "after-store", "after-publish", "before-ack"]);
      await w.worker.stop();
    } finally {
      armFaultPoints(new Map(), log);
    }
  }, 60_000);
});

describe("step events", () => {
  /** Runs one task whose handler reports 20 steps, 10 ms apart; returns the steps announced as events and the run's ms. */
  async function announcedSteps(name: string, jobId: string, stepEventMs: number): Promise<{ steps: number[]; ms: number }> {
    let ms = 0;
    const stepping: StageHandler = {
      pool: "prior",
      bundle: "stepping@1",
      batchKey: () => "k",
      run: async (batch) => {
        const started = Date.now();
        for (let step = 1; step <= 20; step++) {
          await sleep(10);
          for (const t of batch) t.progress(step, 20);
        }
        ms = Date.now() - started;
        return batch.map(() => ({ embedding: encodeTensor({ dtype: "float32", shape: [1, 2], data: new Float32Array([1, 2]) }) }));
      },
    };
    const w = await startWorker(name, stepping, { stepEventMs });
    const steps: number[] = [];
    const sub = subscribeEvents(w.conn.nc, jobId, (e) => {
      if (e.event.case === "step") steps.push(e.event.value.step);
    });
    await w.conn.nc.flush();
    await new JobStore(w.conn.jobs).create(create(JobSchema, { jobId, state: JobState.QUEUED, numImages: 1 }));
    const task = create(StageTaskSchema, { jobId, route: [Stage.PRIOR, Stage.DECODER], params: create(JobParamsSchema, { prompt: "z" }) });
    await w.conn.js.publish(taskSubject("prior"), toBinary(StageTaskSchema, task));
    await until("the task to be handed on", async () => (await w.outcomes()).ok === 1);
    await w.conn.nc.flush();
    sub.unsubscribe();
    await w.worker.stop();
    return { steps, ms };
  }

  it("are announced at most once per stepEventMs, and the last step always", async () => {
    const every = await announcedSteps("worker-d", "5a11ed00-0000-4000-8000-000000000003", 0);
    expect(every.steps).toEqual(Array.from({ length: 20 }, (_, i) => i + 1));
    // 20 steps over at least 200 ms, at most one event per 80 ms on the way, then step 20.
    const { steps, ms } = await announcedSteps("worker-e", "5a11ed00-0000-4000-8000-000000000004", 80);
    expect(steps.at(-1)).toBe(20);
    expect(steps.length).toBeGreaterThanOrEqual(2);
    expect(steps.length).toBeLessThanOrEqual(Math.floor(ms / 80) + 1);
    expect(steps).toEqual([...new Set(steps)].sort((a, b) => a - b));
  }, 60_000);
});
