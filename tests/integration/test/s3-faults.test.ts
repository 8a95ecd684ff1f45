import { startFaultProxy, type FaultProxy } from "@unclip/devstack";
import { create, JobState, SamplingOptionsSchema, Stage, type Job, type JobEvent } from "@unclip/protocol";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { collect, generateRequest, startTestFarm, terminal } from "./farm-fixture.js";

/**
 * The production retry settings at a tenth of their time: backoff 1, 2, 5, 10, 30 s and a 10 s S3 deadline become
 * 0.1, 0.2, 0.5, 1, 3 s and 1 s; max-deliver stays 8. A 6 s outage here is the 60 s outage of production.
 */
const SCALE = 10;
const TIME_SCALED = {
  UNCLIP_RETRY_BACKOFF_MS: [1000, 2000, 5000, 10_000, 30_000].map((ms) => ms / SCALE).join(","),
  UNCLIP_ACK_WAIT_MS: "3000",
};
/** Only the decoder gets the scaled S3 deadline: the other processes start (and check the bucket) under full load. */
const S3_TIMEOUT_MS = String(10_000 / SCALE);
const OUTAGE_MS = 60_000 / SCALE;

let env: Awaited<ReturnType<typeof startTestFarm>>;
let proxy: FaultProxy;
beforeAll(async () => {
  env = await startTestFarm({ env: TIME_SCALED, workers: { decoder: 1 } });
  // The decoder (the stage that writes images) reaches the object store through a proxy that can stall or refuse.
  proxy = await startFaultProxy({ targetPort: env.farm.s3.port });
  for (const d of env.farm.workers("decoder")) await d.stop();
  await env.farm.addWorker("decoder", { UNCLIP_S3_ENDPOINT: proxy.endpoint, UNCLIP_S3_TIMEOUT_MS: S3_TIMEOUT_MS });
});
afterAll(async () => {
  await env?.stop();
  await proxy?.close();
});

function decoderAttempts(events: JobEvent[]): number[] {
  return events.flatMap((e) => (e.event.case === "stageStarted" && e.event.value.stage === Stage.DECODER ? [e.event.value.attempt] : []));
}

/** How the object store fails: "stall" hangs every connection (through the proxy), "down" stops the server itself. */
type Outage = "stall" | "down";

async function setOutage(outage: Outage, on: boolean): Promise<void> {
  if (outage === "stall") proxy.setMode(on ? "stall" : "pass");
  else if (on) await env.farm.s3.halt();
  else await env.farm.s3.restart();
}

/** Runs a job while the object store is out for `outageMs` from the job's start. */
async function jobThroughOutage(outage: Outage, outageMs: number, prompt: string) {
  await setOutage(outage, true);
  const started = Date.now();
  const restored = new Promise<void>((resolve) => setTimeout(resolve, outageMs)).then(() => setOutage(outage, false));
  try {
    const events = await collect(
      env.client.generate(generateRequest(prompt, { sampling: create(SamplingOptionsSchema, { priorSteps: 4, decoderSteps: 4 }) })),
    );
    return { events, seconds: (Date.now() - started) / 1000 };
  } finally {
    await restored;
  }
}

describe("workers under an object-store outage", () => {
  it("a store that hangs for the 60 s-equivalent outage fails no job: writes time out and are retried with backoff", async () => {
    const { events, seconds } = await jobThroughOutage("stall", OUTAGE_MS, "a red square");
    expect(terminal(events).case).toBe("completed");
    expect((terminal(events).value as Job).state).toBe(JobState.SUCCEEDED);
    // The outage really hit the job: it outlasted it, and the decoder needed several deliveries.
    expect(seconds).toBeGreaterThanOrEqual(OUTAGE_MS / 1000);
    const attempts = decoderAttempts(events);
    expect(attempts.length).toBeGreaterThanOrEqual(3);
    expect(attempts).toEqual(attempts.map((_, i) => i + 1));
  });

  it("a store that is down (stopped, connections refused) for the 60 s-equivalent outage fails no job either", async () => {
    const { events } = await jobThroughOutage("down", OUTAGE_MS, "a blue circle");
    expect(terminal(events).case).toBe("completed");
    expect(decoderAttempts(events).length).toBeGreaterThanOrEqual(3);
  });

  it("an outage longer than the whole retry window fails the job with a readable error, not a hang", async () => {
    // 0.1 + 0.2 + 0.5 + 1 + 3 + 3 + 3 s of backoff between 8 deliveries: a 20 s outage outlasts them.
    const { events } = await jobThroughOutage("down", 20_000, "a green star");
    expect(terminal(events).case).toBe("failed");
    expect((terminal(events).value as Job).error).toMatch(/the decoder stage failed 8 times; last error: .*unavailable/);
    expect(decoderAttempts(events)).toEqual([1, 2, 3, 4, 5, 6, 7, 8]);
  });

  it("every worker survived the outages: no process exited", () => {
    for (const s of env.farm.services()) {
      expect(s.current.child.exitCode, s.name).toBeNull();
      expect(s.restarts, s.name).toBe(0);
    }
  });
});
