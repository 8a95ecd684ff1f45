import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { create, JobState, SamplingOptionsSchema, Stage, type Job, type JobEvent } from "@unclip/protocol";
import { generateRequest, startTestFarm } from "./farm-fixture.js";

/** Ack wait of the decoder pool: a dead worker's task is redelivered this long after its last heartbeat. */
const ACK_WAIT_MS = 3000;

let env: Awaited<ReturnType<typeof startTestFarm>>;
beforeAll(async () => {
  env = await startTestFarm({ env: { UNCLIP_ACK_WAIT_MS: String(ACK_WAIT_MS) } });
});
afterAll(async () => {
  await env?.stop();
});

/** Starts a slow job and resolves once the decoder is inside its diffusion loop. */
async function decoderMidTask(prompt: string) {
  const events: JobEvent[] = [];
  const stream = env.client.generate(
    generateRequest(prompt, { sampling: create(SamplingOptionsSchema, { priorSteps: 4, decoderSteps: 600 }) }),
  );
  const iterator = stream[Symbol.asyncIterator]();
  for (;;) {
    const { value, done } = await iterator.next();
    if (done) throw new Error("stream ended before the decoder started");
    events.push(value);
    if (value.event.case === "step" && value.event.value.stage === Stage.DECODER && value.event.value.step >= 3) break;
  }
  const rest = (async () => {
    for (;;) {
      const { value, done } = await iterator.next();
      if (done) return events;
      events.push(value);
    }
  })();
  return { events, rest, jobId: events[0]!.jobId };
}

describe("a decoder worker dying in the middle of a task", () => {
  it("loses nothing: the task is redelivered to the next decoder worker and the job completes", async () => {
    const { rest } = await decoderMidTask("a black triangle bottom right");
    const decoder = env.farm.services.get("decoder-worker")!;
    decoder.child.kill("SIGKILL");
    expect(await decoder.exited).toBeNull();
    await env.farm.startService("decoder-worker");
    const events = await rest;
    const end = events[events.length - 1]!.event;
    expect(end.case).toBe("completed");
    expect((end.value as Job).state).toBe(JobState.SUCCEEDED);
    const decoderStarts = events.filter((e) => e.event.case === "stageStarted" && e.event.value.stage === Stage.DECODER);
    expect(decoderStarts.map((e) => (e.event.value as { attempt: number }).attempt)).toEqual([1, 2]);
  });

  it("fails the job with a readable error once a task runs out of deliveries", async () => {
    await env.farm.services.get("decoder-worker")!.stop();
    await env.farm.startService("decoder-worker", { UNCLIP_MAX_DELIVER: "1" });
    const { rest } = await decoderMidTask("an orange circle");
    env.farm.services.get("decoder-worker")!.child.kill("SIGKILL");
    const events = await rest;
    const end = events[events.length - 1]!.event;
    expect(end.case).toBe("failed");
    expect((end.value as Job).error).toMatch(/decoder stage of image 0 was delivered 1 times without finishing/);
    await env.farm.startService("decoder-worker");
  });
});

describe("graceful shutdown", () => {
  it("a worker stopped with SIGTERM finishes its in-flight task before it exits", async () => {
    const { rest } = await decoderMidTask("a green square");
    const decoder = env.farm.services.get("decoder-worker")!;
    decoder.child.kill("SIGTERM");
    expect(await decoder.exited).toBe(0);
    await env.farm.startService("decoder-worker");
    const events = await rest;
    expect(events[events.length - 1]!.event.case).toBe("completed");
    const attempts = events.filter((e) => e.event.case === "stageStarted" && e.event.value.stage === Stage.DECODER);
    expect(attempts).toHaveLength(1);
  });
});
