import { Writable } from "node:stream";
import { startNatsServer, type NatsServerHandle } from "@unclip/devstack";
import { connectFarm, JobStore, TASK_STREAM, type FarmConnection, type Logger } from "@unclip/core";
import { create, JobParamsSchema, JobSchema, JobState, Lane, Stage, StageTaskSchema, type StageTask } from "@unclip/protocol";
import { pino } from "pino";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { JobReconciler, PendingAdmissions } from "../src/job-reconciler.js";

let nats: NatsServerHandle;
let conn: FarmConnection;
let pending: PendingAdmissions;
let jobs: JobStore;
beforeAll(async () => {
  nats = await startNatsServer();
  conn = await connectFarm(nats.url, "reconciler-test", { owner: true });
  pending = await PendingAdmissions.open(conn, 3600);
  jobs = new JobStore(conn.jobs);
});
afterAll(async () => {
  await conn?.nc.close();
  await nats?.stop();
});

/** A logger whose lines the test can read. */
function capturingLogger(): { log: Logger; lines: { msg: string; jobId?: string }[] } {
  const lines: { msg: string; jobId?: string }[] = [];
  const sink = new Writable({
    write(chunk: Buffer, _enc, done) {
      lines.push(JSON.parse(chunk.toString()) as { msg: string; jobId?: string });
      done();
    },
  });
  return { log: pino({ level: "info" }, sink) as unknown as Logger, lines };
}

let counter = 0;
/** An admission left half done: its under-way entry and its QUEUED record, as a gateway that died leaves them. */
async function orphan(admittedMsAgo: number, numImages = 2): Promise<StageTask> {
  const jobId = `00000000-0000-4000-8000-${String(++counter).padStart(12, "0")}`;
  const createdAtMs = BigInt(Date.now() - admittedMsAgo);
  const template = create(StageTaskSchema, {
    jobId,
    seed: 7n,
    route: [Stage.PRIOR, Stage.DECODER],
    params: create(JobParamsSchema, { prompt: "an orphan", numImages, size: 64, createdAtMs }),
    lane: Lane.INTERACTIVE,
  });
  await pending.add(template);
  await jobs.create(create(JobSchema, { jobId, state: JobState.QUEUED, numImages, createdAtMs }));
  return template;
}

const taskCount = async () => (await conn.jsm.streams.info(TASK_STREAM)).state.messages;

describe("JobReconciler", () => {
  it("publishes an orphan's tasks once, marks it queued and clears its entry, with two gateways reconciling at once", async () => {
    const template = await orphan(1_000);
    const before = await taskCount();
    const a = capturingLogger();
    const b = capturingLogger();
    const opts = { orphanAfterMs: 0 };
    await Promise.all([
      new JobReconciler(conn, jobs, pending, a.log, opts).pass(),
      new JobReconciler(conn, jobs, pending, b.log, opts).pass(),
    ]);
    expect(await taskCount()).toBe(before + 2);
    expect((await jobs.get(template.jobId))?.queuedAtMs).toBeGreaterThan(0n);
    expect(await pending.stale(0)).toEqual([]);
    const acted = [...a.lines, ...b.lines].filter((l) => l.jobId === template.jobId && l.msg.startsWith("unfinished admission"));
    expect(acted).toHaveLength(1);
  });

  it("leaves an admission alone while it is younger than orphanAfterMs", async () => {
    const template = await orphan(0);
    const { log } = capturingLogger();
    await new JobReconciler(conn, jobs, pending, log, { orphanAfterMs: 60_000 }).pass();
    expect((await jobs.get(template.jobId))?.queuedAtMs).toBe(0n);
    expect((await pending.stale(0)).map((p) => p.template.jobId)).toEqual([template.jobId]);
    await pending.remove(template.jobId);
  });

  it("fails an orphan too old to republish safely, with a reason a person can act on", async () => {
    const template = await orphan(9 * 60_000);
    const before = await taskCount();
    const { log } = capturingLogger();
    await new JobReconciler(conn, jobs, pending, log, { orphanAfterMs: 0 }).pass();
    const job = await jobs.get(template.jobId);
    expect(JobState[job!.state]).toBe("FAILED");
    expect(job!.error).toMatch(/^admission did not finish: its gateway stopped before queuing every task, .*submit the job again$/);
    expect(await taskCount()).toBe(before);
    expect(await pending.stale(0)).toEqual([]);
  });

  it("only clears the entry of a job that was queued or ended meanwhile", async () => {
    const template = await orphan(1_000);
    await jobs.update(template.jobId, (j) => ({ ...j, state: JobState.CANCELLED }));
    const before = await taskCount();
    const { log } = capturingLogger();
    await new JobReconciler(conn, jobs, pending, log, { orphanAfterMs: 0 }).pass();
    expect(JobState[(await jobs.get(template.jobId))!.state]).toBe("CANCELLED");
    expect(await taskCount()).toBe(before);
    expect(await pending.stale(0)).toEqual([]);
  });
});
