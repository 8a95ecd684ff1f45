import { setTimeout as sleep } from "node:timers/promises";
import { status, type ServiceError } from "@grpc/grpc-js";
import { connect, type NatsConnection } from "@nats-io/transport-node";
import { loadCommonConfig, ObjectStore, subscribeEvents } from "@unclip/core";
import { create, JobState, SamplingOptionsSchema, Stage, type Job, type JobEvent } from "@unclip/protocol";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { collect, generateRequest, startTestFarm, terminal } from "./farm-fixture.js";

/** Decoder steps of the job to cancel: enough that the decoder is far from done when the cancel lands. */
const DECODER_STEPS = 600;

let env: Awaited<ReturnType<typeof startTestFarm>>;
let nc: NatsConnection;
let store: ObjectStore;
beforeAll(async () => {
  env = await startTestFarm({ workers: { decoder: 1 } });
  nc = await connect({ servers: env.farm.nats.url });
  store = new ObjectStore(loadCommonConfig(env.farm.env, 0).s3);
});
afterAll(async () => {
  await nc?.close();
  await env?.stop();
});

async function cancelledTasks(): Promise<number> {
  const [decoder] = env.farm.workers("decoder");
  const text = await fetch(`http://127.0.0.1:${String(decoder!.current.ready.metricsPort)}/metrics`).then((r) => r.text());
  return Number(/^unclip_tasks_total\{[^}]*stage="decoder"[^}]*outcome="cancelled"[^}]*\} (\d+)$/m.exec(text)?.[1] ?? 0);
}

describe("cancelling a running job", () => {
  it("stops the decoder between diffusion steps, writes no output, and refuses a second cancel", async () => {
    const cancelledBefore = await cancelledTasks();
    const stream = env.client.generate(
      generateRequest("a purple heart", { sampling: create(SamplingOptionsSchema, { priorSteps: 4, decoderSteps: DECODER_STEPS }) }),
    );
    const iterator = stream[Symbol.asyncIterator]();
    const first = await iterator.next();
    const jobId = (first.value as JobEvent).jobId;
    // Every step the worker publishes, also after the gateway has ended the client's stream.
    const steps: { step: number; atMs: number }[] = [];
    const sub = subscribeEvents(nc, jobId, (e) => {
      if (e.event.case === "step" && e.event.value.stage === Stage.DECODER) steps.push({ step: e.event.value.step, atMs: Date.now() });
    });
    await nc.flush();
    for (;;) {
      const { value, done } = await iterator.next();
      if (done) throw new Error("the stream ended before the decoder started");
      if (value.event.case === "step" && value.event.value.stage === Stage.DECODER && value.event.value.step >= 3) break;
    }
    const cancelled = await env.client.cancelJob(jobId);
    const cancelledAt = Date.now();
    expect(cancelled.state).toBe(JobState.CANCELLED);
    const rest: JobEvent[] = [];
    for (;;) {
      const { value, done } = await iterator.next();
      if (done) break;
      rest.push(value);
    }
    expect(terminal(rest).case).toBe("cancelled");
    expect((terminal(rest).value as Job).state).toBe(JobState.CANCELLED);

    // The worker dropped the task: its cancelled-task count goes up once the model stopped.
    const deadline = Date.now() + 30_000;
    while ((await cancelledTasks()) === cancelledBefore && Date.now() < deadline) await sleep(100);
    expect(await cancelledTasks()).toBe(cancelledBefore + 1);
    // And it published no step after that: wait as long again to be sure none follows.
    const stepsWhenDropped = steps.length;
    await sleep(1500);
    expect(steps.length).toBe(stepsWhenDropped);
    const last = Math.max(...steps.map((s) => s.step));
    expect(last).toBeGreaterThanOrEqual(3);
    // Stopped well short of the total: between steps, soon after the cancel.
    expect(last).toBeLessThan(DECODER_STEPS / 2);
    const afterCancel = steps.filter((s) => s.atMs > cancelledAt + 1000);
    expect(afterCancel).toEqual([]);
    sub.unsubscribe();

    // Nothing was written for the job.
    expect(await store.list(`renders/${jobId}/`)).toEqual([]);

    const again = await env.client.cancelJob(jobId).then(
      () => undefined,
      (err: ServiceError) => err,
    );
    expect(again?.code).toBe(status.FAILED_PRECONDITION);
    expect(again?.details).toMatch(/already ended \(cancelled\)/);
  });

  it("leaves the worker serving: the next job completes", async () => {
    const events = await collect(env.client.generate(generateRequest("a white cross")));
    expect(terminal(events).case).toBe("completed");
  });
});
