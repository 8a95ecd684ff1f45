import { setTimeout as sleep } from "node:timers/promises";
import { startNatsServer, type NatsServerHandle } from "@unclip/devstack";
import { create, toBinary, JobSchema, JobState, Stage, StageTaskSchema, JobParamsSchema } from "@unclip/protocol";
import { pino } from "pino";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  connectFarm,
  ensurePoolConsumer,
  JobStore,
  TASK_STREAM,
  taskSubject,
  watchDeadLetters,
  DEAD_LETTER_STREAM,
  type FarmConnection,
} from "../src/index.js";

const log = pino({ level: "silent" });
let nats: NatsServerHandle;
beforeAll(async () => {
  nats = await startNatsServer();
});
afterAll(async () => {
  await nats?.stop();
});

async function waitFor<T>(what: string, probe: () => Promise<T | undefined>, timeoutMs = 15_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await probe();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(100);
  }
}

describe("durable dead letters", () => {
  it("fail the job of a task that ran out of deliveries while no farm process was connected, once one connects", async () => {
    // Only a bare client is connected: it creates the streams, queues a task and gives it up, as a crashing worker would.
    const bare: FarmConnection = await connectFarm(nats.url, "test-client");
    const jobId = "0b7c1c1e-0000-4000-8000-00000000dead";
    await new JobStore(bare.jobs).create(create(JobSchema, { jobId, state: JobState.RUNNING, numImages: 1 }));
    const consumer = await ensurePoolConsumer(bare.jsm, "decoder", { ackWaitMs: 1000, maxDeliver: 1 });
    const task = create(StageTaskSchema, { jobId, index: 0, route: [Stage.DECODER], params: create(JobParamsSchema, {}) });
    const ack = await bare.js.publish(taskSubject("decoder"), toBinary(StageTaskSchema, task));
    const pool = await bare.js.consumers.get(TASK_STREAM, consumer);
    const delivered = await pool.next({ expires: 5000 });
    expect(delivered?.seq).toBe(ack.seq);
    delivered!.nak();
    // nats-server 2.9 notices the exhausted task (and fires the advisory) when the pool pulls again.
    expect(await pool.next({ expires: 2000 })).toBeNull();
    // JetStream's advisory lands in the dead-letter stream with nobody to handle it.
    await waitFor("the advisory to be stored", async () =>
      (await bare.jsm.streams.info(DEAD_LETTER_STREAM)).state.messages === 1 ? true : undefined,
    );
    await sleep(500);
    expect((await new JobStore(bare.jobs).get(jobId))?.state).toBe(JobState.RUNNING);
    await bare.nc.close();

    // A farm process starts (a gateway or any worker): it reads the stored advisory and fails the job.
    const later = await connectFarm(nats.url, "later-process");
    const watch = watchDeadLetters(later, log);
    try {
      const failed = await waitFor("the job to fail", async () => {
        const job = await new JobStore(later.jobs).get(jobId);
        return job?.state === JobState.FAILED ? job : undefined;
      });
      expect(failed.error).toMatch(/the decoder stage of image 0 was delivered 1 times without finishing/);
      // The task left the work queue, and the advisory is not handed out again.
      await waitFor("the task to be removed", async () =>
        (await later.jsm.streams.info(TASK_STREAM)).state.messages === 0 ? true : undefined,
      );
      const info = await later.jsm.consumers.info(DEAD_LETTER_STREAM, "farm-dead-letters");
      expect(info.num_ack_pending + info.num_pending).toBe(0);
    } finally {
      await watch.stop();
      await later.nc.close();
    }
  }, 60_000);
});
