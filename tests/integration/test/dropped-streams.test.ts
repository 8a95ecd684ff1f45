import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { connectFarm, JOB_BUCKET, type FarmConnection } from "@unclip/core";
import { create, SamplingOptionsSchema, type JobEvent } from "@unclip/protocol";
import { collect, generateRequest, startTestFarm, terminal } from "./farm-fixture.js";

let env: Awaited<ReturnType<typeof startTestFarm>>;
let conn: FarmConnection;
beforeAll(async () => {
  env = await startTestFarm();
  conn = await connectFarm(env.farm.nats.url, "dropped-streams-test");
});
afterAll(async () => {
  await conn?.nc.close();
  await env?.stop();
});

/** What the gateway holds for its streams: NATS subscriptions of its connection, and watchers of job records. */
async function gatewayHoldings(): Promise<{ subscriptions: number; watchers: number }> {
  const connz = (await (await fetch(`${env.farm.nats.monitorUrl}/connz?subs=1`)).json()) as {
    connections: { name?: string; subscriptions_list?: string[] }[];
  };
  const gateway = connz.connections.filter((c) => c.name === "gateway");
  expect(gateway).toHaveLength(1);
  // A KV watch would be an ordered consumer ("oc_…") on the job bucket's stream, kept by the server for five
  // minutes after its client stops; the gateway must follow records without them.
  let watchers = 0;
  for await (const c of conn.jsm.consumers.list(`KV_${JOB_BUCKET}`)) if (c.name.startsWith("oc_")) watchers++;
  return { subscriptions: gateway[0]!.subscriptions_list?.length ?? 0, watchers };
}

/** Polls until the gateway's holdings are back at `baseline` (or the time runs out); returns the last reading. */
async function settledAt(baseline: { subscriptions: number; watchers: number }, timeoutMs = 30_000) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const now = await gatewayHoldings();
    if ((now.subscriptions <= baseline.subscriptions && now.watchers <= baseline.watchers) || Date.now() > deadline) return now;
    await new Promise((r) => setTimeout(r, 250));
  }
}

/**
 * A stream held open as a client would: its first event is read (unless `read` is false) and nothing more, so the
 * gateway's writes back up; `drop` cancels it as a client that goes away does.
 */
function hold(stream: AsyncIterable<JobEvent> & { cancel(): void }, read = true) {
  const events = stream[Symbol.asyncIterator]();
  const first = read ? events.next().then((r) => r.value as JobEvent) : undefined;
  return {
    first,
    drop: () => {
      stream.cancel();
      // The cancelled call ends its iterator with CANCELLED, which is what this client asked for.
      void events.next().catch(() => undefined);
    },
  };
}

describe("streams whose clients vanish", () => {
  it("releases every subscription and watcher of 200 dropped WatchJob streams and 40 dropped Generate streams", async () => {
    const pid = env.farm.gateway.current.child.pid;
    const baseline = await settledAt({ subscriptions: 0, watchers: 0 }, 0);
    // A long job that keeps sending step events while the streams come and go.
    const slow = hold(
      env.client.generate(
        generateRequest("a job that runs for a while", {
          sampling: create(SamplingOptionsSchema, { priorSteps: 1000, decoderSteps: 1000 }),
        }),
      ),
    );
    const jobId = (await slow.first!).jobId;
    const withSlow = { ...baseline, subscriptions: baseline.subscriptions + 2 };

    const phases: Record<string, { subscriptions: number; watchers: number }> = {};
    // 100 that read their first event and then nothing (the gateway's writes back up), then go away.
    const readers = Array.from({ length: 100 }, () => hold(env.client.watchJob(jobId)));
    await Promise.all(readers.map((r) => r.first));
    let during = await gatewayHoldings();
    // A stream's first event can come before its record's subscription is up.
    for (let i = 0; i < 40 && during.subscriptions < withSlow.subscriptions + 200; i++) {
      await new Promise((r) => setTimeout(r, 250));
      during = await gatewayHoldings();
    }
    await new Promise((r) => setTimeout(r, 3_000));
    for (const r of readers) r.drop();
    phases.readers = await settledAt(withSlow, 20_000);
    // 100 that go away within 50 ms of asking, before the gateway has answered anything (while it looks the job up
    // or sets up its subscriptions).
    await Promise.all(
      Array.from({ length: 100 }, async (_, i) => {
        const s = hold(env.client.watchJob(jobId), false);
        await new Promise((r) => setTimeout(r, i % 50));
        s.drop();
      }),
    );
    phases.immediate = await settledAt(withSlow, 20_000);
    // 40 Generate streams dropped right after their job was queued.
    const generates = Array.from({ length: 40 }, (_, i) => hold(env.client.generate(generateRequest(`dropped generate ${i}`))));
    const queued = await Promise.all(generates.map((g) => g.first!));
    for (const g of generates) g.drop();
    slow.drop();
    phases.generates = await settledAt(baseline, 20_000);
    console.log(`gateway holdings: baseline ${JSON.stringify(baseline)}, with 100 streams ${JSON.stringify(during)}, after`, phases);

    // Two subscriptions per stream (its job's events and its record), and no consumer on the server for either.
    expect(during.subscriptions).toBe(withSlow.subscriptions + 200);
    expect(during.watchers).toBe(0);
    // The slow job's own stream holds 2 more until it is dropped (or its job ends first).
    expect(phases.readers!.subscriptions).toBeLessThanOrEqual(withSlow.subscriptions);
    expect(phases.immediate!.subscriptions).toBeLessThanOrEqual(withSlow.subscriptions);
    expect(phases.generates).toEqual(baseline);
    expect([phases.readers!.watchers, phases.immediate!.watchers]).toEqual([0, 0]);

    // The dropped Generate jobs run on; the gateway is the same process and still serves.
    await Promise.all(queued.map((q) => env.client.cancelJob(q.jobId).catch(() => undefined)));
    await env.client.cancelJob(jobId).catch(() => undefined);
    expect(terminal(await collect(env.client.generate(generateRequest("after the drops")))).case).toBe("completed");
    expect(env.farm.gateway.current.child.pid).toBe(pid);
    expect(env.farm.gateway.restarts).toBe(0);
  });
});
