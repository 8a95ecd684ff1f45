import { setTimeout as sleep } from "node:timers/promises";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { create, JobState, SamplingOptionsSchema, Stage, type Job, type JobEvent } from "@unclip/protocol";
import { generateRequest, startTestFarm } from "./farm-fixture.js";

/** Ack wait of the decoder pool: a dead worker's task is redelivered this long after its last heartbeat. */
const ACK_WAIT_MS = 3000;

/** The launcher's lines: exits and restarts of supervised processes. */
const supervisorLog: string[] = [];
let env: Awaited<ReturnType<typeof startTestFarm>>;
beforeAll(async () => {
  // One decoder whatever UNCLIP_FARM_WORKERS says: these tests kill the worker that holds the task.
  env = await startTestFarm({
    env: { UNCLIP_ACK_WAIT_MS: String(ACK_WAIT_MS) },
    workers: { decoder: 1 },
    log: (line) => supervisorLog.push(line),
  });
});
afterAll(async () => {
  const before = supervisorLog.length;
  await env?.stop();
  // Stopping the farm restarts nothing.
  expect(supervisorLog.slice(before)).toEqual([]);
});

function onlyDecoder() {
  const decoders = env.farm.workers("decoder");
  expect(decoders).toHaveLength(1);
  return decoders[0]!;
}

function decoderStarts(events: JobEvent[]) {
  return events.flatMap((e) => (e.event.case === "stageStarted" && e.event.value.stage === Stage.DECODER ? [e.event.value] : []));
}

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
  it("loses nothing: the launcher restarts the worker, the task is redelivered to it and the job completes", async () => {
    const { rest } = await decoderMidTask("a black triangle bottom right");
    const decoder = onlyDecoder();
    const killed = decoder.current;
    const restarted = decoder.restarted();
    decoder.kill("SIGKILL");
    expect(await killed.exited).toBeNull();
    const replacement = await restarted;
    expect(replacement.child.pid).not.toBe(killed.child.pid);
    expect(decoder.current).toBe(replacement);
    expect(decoder.restarts).toBe(1);
    expect(decoder.exits).toEqual([expect.objectContaining({ pid: killed.child.pid, signal: "SIGKILL", restartInMs: 500 })]);
    expect(supervisorLog).toEqual([
      expect.stringMatching(
        new RegExp(`^decoder-worker-1 \\(pid ${killed.child.pid}\\) exited with SIGKILL after [\\d.]+ s; restarting in 0\\.5 s$`),
      ),
      expect.stringMatching(new RegExp(`^decoder-worker-1 restarted \\(restart 1\\): pid ${replacement.child.pid}, metrics :\\d+$`)),
    ]);
    const events = await rest;
    const end = events[events.length - 1]!.event;
    expect(end.case).toBe("completed");
    expect((end.value as Job).state).toBe(JobState.SUCCEEDED);
    const starts = decoderStarts(events);
    expect(starts.map((s) => s.attempt)).toEqual([1, 2]);
    // The restarted process keeps its name, as a pod's restarted container does.
    expect(starts.map((s) => s.worker)).toEqual(["decoder-worker-1", "decoder-worker-1"]);
  });

  it("fails the job with a readable error once a task runs out of deliveries", async () => {
    await onlyDecoder().stop();
    const decoder = await env.farm.addWorker("decoder", { UNCLIP_MAX_DELIVER: "1" });
    expect(decoder.name).toBe("decoder-worker-2");
    const { rest } = await decoderMidTask("an orange circle");
    decoder.kill("SIGKILL");
    const events = await rest;
    const end = events[events.length - 1]!.event;
    expect(end.case).toBe("failed");
    expect((end.value as Job).error).toMatch(/decoder stage of image 0 was delivered 1 times without finishing/);
    expect(decoder.exits[0]).toMatchObject({ signal: "SIGKILL" });
    // Back to a worker with the default max deliveries.
    await decoder.stop();
    await env.farm.addWorker("decoder");
  });
});

describe("graceful shutdown", () => {
  it("a worker sent SIGTERM finishes its in-flight task before it exits 0, and is restarted like any exited container", async () => {
    const { rest } = await decoderMidTask("a green square");
    const decoder = onlyDecoder();
    const terminated = decoder.current;
    const restarted = decoder.restarted();
    decoder.kill("SIGTERM");
    expect(await terminated.exited).toBe(0);
    await restarted;
    expect(decoder.exits).toEqual([expect.objectContaining({ code: 0, signal: null })]);
    const events = await rest;
    expect(events[events.length - 1]!.event.case).toBe("completed");
    expect(decoderStarts(events)).toHaveLength(1);
  });

  it("a worker stopped through the launcher (stop()) is not restarted", async () => {
    const extra = await env.farm.addWorker("decoder");
    expect(env.farm.workers("decoder")).toContain(extra);
    const proc = extra.current;
    const logged = supervisorLog.length;
    await extra.stop();
    expect(await proc.exited).toBe(0);
    await sleep(1500); // three times the first restart delay
    expect(extra.restarts).toBe(0);
    expect(extra.exits).toEqual([]);
    expect(supervisorLog.slice(logged)).toEqual([]);
    expect(env.farm.workers("decoder")).not.toContain(extra);
  });

  it("a worker sent SIGTERM runs the tasks it prefetched instead of releasing them", async () => {
    for (const d of env.farm.workers("decoder")) await d.stop();
    // One task at a time plus two prefetched: SIGTERM arrives while the worker holds three.
    const decoder = await env.farm.addWorker("decoder", { UNCLIP_MAX_BATCH: "1", UNCLIP_PREFETCH: "2" });
    const sampling = create(SamplingOptionsSchema, { priorSteps: 4, decoderSteps: 150 });
    const jobs = ["a red square", "a blue circle", "a yellow star"].map(async (prompt) => {
      const events: JobEvent[] = [];
      for await (const e of env.client.generate(generateRequest(prompt, { sampling }))) events.push(e);
      return events;
    });
    const held = async () => {
      const text = await fetch(`http://127.0.0.1:${String(decoder.current.ready.metricsPort)}/metrics`).then((r) => r.text());
      return Number(/^unclip_tasks_in_flight\{[^}]*\} (\d+)$/m.exec(text)?.[1] ?? 0);
    };
    const deadline = Date.now() + 30_000;
    while ((await held()) < 3 && Date.now() < deadline) await sleep(50);
    expect(await held()).toBe(3);
    const terminated = decoder.current;
    decoder.kill("SIGTERM");
    expect(await terminated.exited).toBe(0);
    for (const events of await Promise.all(jobs)) {
      expect(events[events.length - 1]!.event.case).toBe("completed");
      expect(decoderStarts(events).map((s) => s.attempt)).toEqual([1]);
    }
  });
});
