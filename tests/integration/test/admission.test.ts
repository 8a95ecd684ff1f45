import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { status, type ServiceError } from "@grpc/grpc-js";
import { UnclipClient } from "@unclip/cli";
import { startService } from "@unclip/devstack";
import { create, SamplingOptionsSchema, type Queued } from "@unclip/protocol";
import { collect, generateRequest, startTestFarm, terminal } from "./farm-fixture.js";

let env: Awaited<ReturnType<typeof startTestFarm>>;
beforeAll(async () => {
  env = await startTestFarm();
});
afterAll(async () => {
  await env?.stop();
});

describe("admission on the whole farm's backlog", () => {
  it("gives every queued job an ETA in seconds", async () => {
    const events = await collect(env.client.generate(generateRequest("a red circle")));
    expect(events[0]!.event.case).toBe("queued");
    const queued = events[0]!.event.value as Queued;
    expect(queued.etaSeconds).toBeGreaterThan(0);
    expect(Number.isFinite(queued.etaSeconds)).toBe(true);
    expect(terminal(events).case).toBe("completed");
  });

  it("refuses with RESOURCE_EXHAUSTED and a retry-after-ms trailer while tasks in flight fill the limit", async () => {
    // A second gateway with a tiny limit; the workers keep running, so the backlog is in flight, not pending.
    const gateway = await startService("gateway", { ...env.farm.env, UNCLIP_GRPC_PORT: "0", UNCLIP_MAX_QUEUED_TASKS: "2" });
    const client = new UnclipClient(`127.0.0.1:${String(gateway.ready.grpcPort)}`);
    try {
      const slow = generateRequest("a slow job", { sampling: create(SamplingOptionsSchema, { priorSteps: 4, decoderSteps: 1000 }) });
      const running = client.generate(slow)[Symbol.asyncIterator]();
      const queued = await running.next();
      expect(queued.value.event.case).toBe("queued");
      let refused: ServiceError | undefined;
      try {
        await collect(client.generate(generateRequest("one too many")));
      } catch (err) {
        refused = err as ServiceError;
      }
      expect(refused?.code).toBe(status.RESOURCE_EXHAUSTED);
      // The slow job's prior task, or its decoder task published just before the prior's ack: 1 or 2 in the count.
      expect(refused?.details).toMatch(/the farm's queues hold [12] tasks and this job adds 2 \(limit 2\); retry in [\d.]+ s/);
      const retryAfter = Number(refused?.metadata.get("retry-after-ms")[0]);
      expect(Number.isInteger(retryAfter)).toBe(true);
      expect(retryAfter).toBeGreaterThan(0);
      await client.cancelJob(queued.value.jobId);
    } finally {
      client.close();
      await gateway.stop();
    }
  });
});
