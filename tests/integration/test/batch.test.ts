import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { status, type ServiceError } from "@grpc/grpc-js";
import { connectFarm, TASK_STREAM, type FarmConnection } from "@unclip/core";
import {
  create,
  BatchItemSchema,
  BatchState,
  JobState,
  SamplingOptionsSchema,
  SubmitBatchRequestSchema,
  type Batch,
  type BatchItemResult,
  type Queued,
} from "@unclip/protocol";
import { collect, fetchBytes, generateRequest, startTestFarm, terminal } from "./farm-fixture.js";

let env: Awaited<ReturnType<typeof startTestFarm>>;
let conn: FarmConnection;
beforeAll(async () => {
  // A small share of the batch lane per batch, so that fairness between batches shows with small batches.
  env = await startTestFarm({ serviceEnv: { gateway: { UNCLIP_BATCH_IN_FLIGHT: "8" } } });
  conn = await connectFarm(env.farm.nats.url, "batch-test");
});
afterAll(async () => {
  await conn?.nc.close();
  await env?.stop();
});

const items = (n: number, decoderSteps = 2) =>
  Array.from({ length: n }, (_, i) =>
    create(BatchItemSchema, {
      customId: `item-${i}`,
      request: {
        case: "generate",
        value: generateRequest(`a shape number ${i}`, {
          seed: BigInt(i + 1),
          sampling: create(SamplingOptionsSchema, { priorSteps: 2, decoderSteps }),
        }),
      },
    }),
  );

/** Tasks ever published to the farm's task stream: unchanged means no new work started. */
const tasksPublished = async () => (await conn.jsm.streams.info(TASK_STREAM)).state.last_seq;

async function waitFor(batchId: string, done: (b: Batch) => boolean, ms = 150_000): Promise<Batch> {
  const deadline = Date.now() + ms;
  for (;;) {
    const b = await env.client.getBatch(batchId);
    if (done(b)) return b;
    if (Date.now() > deadline)
      throw new Error(`batch ${batchId} stuck: ${JSON.stringify({ state: b.state, s: b.succeeded, f: b.failed, c: b.cancelled })}`);
    await new Promise((r) => setTimeout(r, 250));
  }
}
const ended = (b: Batch) => b.state !== BatchState.RUNNING;

async function allItems(batchId: string, pageSize: number): Promise<{ items: BatchItemResult[]; pages: number }> {
  const out: BatchItemResult[] = [];
  let token = "";
  let pages = 0;
  do {
    const page = await env.client.listBatchItems(batchId, { pageSize, pageToken: token });
    out.push(...page.items);
    token = page.nextPageToken;
    pages++;
  } while (token);
  return { items: out, pages };
}

describe("batch jobs", () => {
  it("completes a batch of 40, paged through ListBatchItems, with a complete results manifest", async () => {
    const submitted = await env.client.submitBatch(create(SubmitBatchRequestSchema, { batchId: "forty", items: items(40) }));
    expect(submitted.state).toBe(BatchState.RUNNING);
    expect(submitted.total).toBe(40);
    const batch = await waitFor("forty", ended);
    expect([batch.state, batch.succeeded, batch.failed, batch.cancelled]).toEqual([BatchState.COMPLETED, 40, 0, 0]);
    const { items: results, pages } = await allItems("forty", 15);
    expect(pages).toBe(3);
    expect(results.map((r) => r.customId)).toEqual(items(40).map((i) => i.customId));
    expect(results.every((r) => r.state === JobState.SUCCEEDED && r.images.length === 1 && r.jobId)).toBe(true);
    expect(new Set(results.map((r) => r.jobId)).size).toBe(40);
    const lines = new TextDecoder()
      .decode(await fetchBytes(batch.resultsUrl))
      .trim()
      .split("\n")
      .map((l) => JSON.parse(l));
    expect(lines.map((l) => l.custom_id)).toEqual(results.map((r) => r.customId));
    expect(lines.every((l) => l.state === "JOB_STATE_SUCCEEDED" && l.images[0].key.endsWith("/64.png"))).toBe(true);
  });

  it("does no new work for a resubmitted batch_id or a retried request_id", async () => {
    const before = await tasksPublished();
    const again = await env.client.submitBatch(create(SubmitBatchRequestSchema, { batchId: "forty", items: items(40) }));
    expect([again.state, again.succeeded]).toEqual([BatchState.COMPLETED, 40]);
    const conflict = await env.client
      .submitBatch(create(SubmitBatchRequestSchema, { batchId: "forty", items: items(3) }))
      .catch((e: ServiceError) => e);
    expect((conflict as ServiceError).code).toBe(status.ALREADY_EXISTS);
    expect(await tasksPublished()).toBe(before);

    const req = generateRequest("a retried request", { requestId: "client-retry-1" });
    const first = await collect(env.client.generate(req));
    expect(terminal(first).case).toBe("completed");
    const afterFirst = await tasksPublished();
    expect(afterFirst).toBe(before + 2);
    const second = await collect(env.client.generate(req));
    expect(second[0]!.jobId).toBe(first[0]!.jobId);
    expect((second[0]!.event.value as Queued).job!.jobId).toBe(first[0]!.jobId);
    expect(terminal(second).case).toBe("completed");
    expect(await tasksPublished()).toBe(afterFirst);
    const other = await collect(env.client.generate(generateRequest("another prompt", { requestId: "client-retry-1" }))).catch(
      (e: ServiceError) => e,
    );
    expect((other as ServiceError).code).toBe(status.ALREADY_EXISTS);
  });

  it("finishes an interactive job submitted behind a 60-item batch before half of that batch", async () => {
    await env.client.submitBatch(create(SubmitBatchRequestSchema, { batchId: "sixty", items: items(60, 40) }));
    await waitFor("sixty", (b) => b.succeeded >= 1);
    const events = await collect(
      env.client.generate(
        generateRequest("an interactive job", { sampling: create(SamplingOptionsSchema, { priorSteps: 2, decoderSteps: 40 }) }),
      ),
    );
    expect(terminal(events).case).toBe("completed");
    const batch = await env.client.getBatch("sixty");
    expect(batch.succeeded + batch.failed).toBeLessThan(30);
  });

  it("stops the remaining items on CancelBatch", async () => {
    const cancelled = await env.client.cancelBatch("sixty");
    expect(cancelled.batchId).toBe("sixty");
    const batch = await waitFor("sixty", ended);
    expect(batch.state).toBe(BatchState.CANCELLED);
    expect(batch.cancelled).toBeGreaterThan(0);
    expect(batch.succeeded + batch.failed + batch.cancelled).toBe(60);
    const settled = await tasksPublished();
    await new Promise((r) => setTimeout(r, 1500));
    expect(await tasksPublished()).toBe(settled);
    const { items: listed } = await allItems("sixty", 100);
    const byState = (state: JobState) => listed.filter((i) => i.state === state).length;
    expect([byState(JobState.SUCCEEDED), byState(JobState.CANCELLED)]).toEqual([batch.succeeded, batch.cancelled]);
    expect(listed.filter((i) => i.state === JobState.CANCELLED && i.jobId && !i.error)).toHaveLength(0);
    const again = await env.client.cancelBatch("sixty").catch((e: ServiceError) => e);
    expect((again as ServiceError).code).toBe(status.FAILED_PRECONDITION);
  });

  it("does not hold a small batch back behind a big one submitted earlier", async () => {
    await env.client.submitBatch(create(SubmitBatchRequestSchema, { batchId: "big", items: items(120, 20) }));
    await waitFor("big", (b) => b.succeeded >= 1);
    await env.client.submitBatch(create(SubmitBatchRequestSchema, { batchId: "small", items: items(10, 20) }));
    const small = await waitFor("small", ended);
    const big = await env.client.getBatch("big");
    expect([small.state, small.succeeded]).toEqual([BatchState.COMPLETED, 10]);
    // In one FIFO the small batch would wait for all 120; sharing the lane, it waits for a few of the big one's.
    expect(big.succeeded).toBeLessThan(60);
    await env.client.cancelBatch("big");
    await waitFor("big", ended);
  });

  it("loses no item when the gateway driving a batch is SIGKILLed", async () => {
    await env.client.submitBatch(create(SubmitBatchRequestSchema, { batchId: "survivor", items: items(30, 20) }));
    await waitFor("survivor", (b) => b.succeeded >= 3);
    env.farm.gateway.kill("SIGKILL");
    await env.farm.gateway.restarted();
    const batch = await waitFor("survivor", ended);
    expect([batch.state, batch.succeeded, batch.failed, batch.cancelled]).toEqual([BatchState.COMPLETED, 30, 0, 0]);
    const { items: results } = await allItems("survivor", 100);
    expect(results.every((r) => r.state === JobState.SUCCEEDED)).toBe(true);
  });
});
