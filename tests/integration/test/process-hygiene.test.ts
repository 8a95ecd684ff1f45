import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { status, type ServiceError } from "@grpc/grpc-js";
import { UnclipClient } from "@unclip/cli";
import { startFaultProxy, startService } from "@unclip/devstack";
import { OutputOptionsSchema, create, type JobEvent } from "@unclip/protocol";
import { collect, generateRequest, startTestFarm, terminal } from "./farm-fixture.js";

/**
 * Every farm process rides out the failures of what it depends on: the object store down or hanging, nats-server
 * restarted, each while clients follow jobs with inline image bytes (the gateway reads every image from the store).
 * No process may exit (an unhandled rejection would kill it, and the supervisor would restart it), every open stream
 * must end (with its job's end or a gRPC status, never a hang), and jobs submitted afterwards must succeed.
 */
let env: Awaited<ReturnType<typeof startTestFarm>>;
let pids: Map<string, number | undefined>;
beforeAll(async () => {
  // A 2 s object-store deadline, so that a hanging store fails calls within the test's time.
  env = await startTestFarm({ s3Proxy: true, env: { UNCLIP_S3_TIMEOUT_MS: "2000" } });
  pids = new Map(env.farm.services().map((s) => [s.name, s.current.child.pid]));
});
afterAll(async () => {
  await env?.stop();
});

const withBytes = (prompt: string) =>
  generateRequest(prompt, { numImages: 2, output: create(OutputOptionsSchema, { includeBytes: true }) });

/** Follows a job to its end; resolves with how the stream ended: its last event's case, or the gRPC status code. */
async function outcome(events: AsyncIterable<JobEvent>): Promise<string> {
  try {
    const all = await collect(events);
    return terminal(all).case ?? "no terminal event";
  } catch (err) {
    return `status ${(err as ServiceError).code}`;
  }
}

/**
 * Starts `n` include_bytes streams and waits until each has its queued event (the gateway follows them all); `ended`
 * says how each one ended.
 */
async function openStreams(label: string, n = 3): Promise<{ ended: Promise<string> }> {
  const ends = await Promise.all(
    Array.from({ length: n }, async (_, i) => {
      const events = env.client.generate(withBytes(`${label} ${i}`))[Symbol.asyncIterator]();
      const first = await events.next();
      expect(first.value?.event.case).toBe("queued");
      return { ended: outcome({ [Symbol.asyncIterator]: () => events }) };
    }),
  );
  return { ended: Promise.all(ends.map((e) => e.ended)).then((all) => all.join(",")) };
}

const within = <T>(ms: number, p: Promise<T>): Promise<T | "hung"> =>
  Promise.race([p, new Promise<"hung">((r) => setTimeout(() => r("hung"), ms).unref())]);

function expectNoProcessExited(): void {
  for (const s of env.farm.services()) {
    expect({ name: s.name, pid: s.current.child.pid, restarts: s.restarts, exits: s.exits.length }).toEqual({
      name: s.name,
      pid: pids.get(s.name),
      restarts: 0,
      exits: 0,
    });
  }
}

async function jobsStillSucceed(label: string): Promise<void> {
  const ends = await Promise.all(Array.from({ length: 2 }, (_, i) => outcome(env.client.generate(withBytes(`${label} ${i}`)))));
  expect(ends).toEqual(["completed", "completed"]);
}

describe("every process survives its dependencies failing", () => {
  it("the object store stopped for 8 s", async () => {
    const streams = await openStreams("during an S3 outage");
    await env.farm.s3.halt();
    await new Promise((r) => setTimeout(r, 8_000));
    await env.farm.s3.restart();
    // Each stream ends: with its job's end, or a status when the gateway could not read its images in time.
    expect(await within(120_000, streams.ended)).toMatch(/^((completed|failed|status \d+),?){3}$/);
    expectNoProcessExited();
    await jobsStillSucceed("after the S3 outage");
    expectNoProcessExited();
  });

  it("the object store hanging (connections accepted, never answered) for 8 s", async () => {
    const streams = await openStreams("during an S3 stall");
    env.farm.s3Proxy!.setMode("stall");
    await new Promise((r) => setTimeout(r, 8_000));
    env.farm.s3Proxy!.setMode("pass");
    // Each stream ends: with its job's end, or a status when the gateway could not read its images in time.
    expect(await within(120_000, streams.ended)).toMatch(/^((completed|failed|status \d+),?){3}$/);
    expectNoProcessExited();
    await jobsStillSucceed("after the S3 stall");
    expectNoProcessExited();
  });

  it("nats-server killed and restarted; /metrics answers 200 meanwhile and counts what it could not collect", async () => {
    const streams = await openStreams("during a NATS restart");
    const metricsUrl = `http://127.0.0.1:${String(env.farm.gateway.current.ready.metricsPort)}/metrics`;
    const collectionErrors = async () => {
      const res = await fetch(metricsUrl);
      expect(res.status).toBe(200);
      const text = await res.text();
      return [...text.matchAll(/^unclip_metrics_collection_errors_total\{[^}]*\} (\d+)/gm)].reduce((n, m) => n + Number(m[1]), 0);
    };
    const before = await collectionErrors();
    await env.farm.nats.kill();
    // Past the gateway's 1 s cache of the queue gauges' reading.
    await new Promise((r) => setTimeout(r, 1_500));
    const during = await collectionErrors();
    await new Promise((r) => setTimeout(r, 3_000));
    await env.farm.nats.restart();
    expect(during).toBeGreaterThan(before);
    // Each stream ends: with its job's end, or a status when the gateway could not read its images in time.
    expect(await within(120_000, streams.ended)).toMatch(/^((completed|failed|status \d+),?){3}$/);
    expectNoProcessExited();
    await jobsStillSucceed("after the NATS restart");
    expectNoProcessExited();
  });

  it("a gateway that cannot read the images it must send inline ends those streams with UNAVAILABLE and lives on", async () => {
    // Its own way to the store, hanging (calls time out after 2 s) while the workers store images as usual.
    const proxy = await startFaultProxy({ targetPort: env.farm.s3.port });
    const gateway = await startService("gateway", { ...env.farm.env, UNCLIP_GRPC_PORT: "0", UNCLIP_S3_ENDPOINT: proxy.endpoint });
    const client = new UnclipClient(`127.0.0.1:${String(gateway.ready.grpcPort)}`);
    try {
      proxy.setMode("stall");
      const ends = await Promise.all(Array.from({ length: 3 }, (_, i) => outcome(client.generate(withBytes(`unreadable ${i}`)))));
      expect(ends).toEqual(Array(3).fill(`status ${status.UNAVAILABLE}`));
      expect(gateway.child.exitCode).toBeNull();
      proxy.setMode("pass");
      expect(await outcome(client.generate(withBytes("readable again")))).toBe("completed");
      expect(gateway.child.exitCode).toBeNull();
      expect(gateway.child.signalCode).toBeNull();
    } finally {
      client.close();
      await gateway.stop();
      await proxy.close();
    }
  });
});
