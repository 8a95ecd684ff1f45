import { describe, expect, it } from "vitest";
import type { JsMsg } from "@nats-io/jetstream";
import { TaskBatcher } from "../src/task-batcher.js";

// The batcher only holds messages and hands them back; any distinct object stands for one.
const msg = (seq: number) => ({ seq }) as unknown as JsMsg;

describe("TaskBatcher", () => {
  it("hands out up to maxBatch held tasks that share the oldest task's key, in arrival order", async () => {
    const b = new TaskBatcher<number>(3, 0);
    [1, 2, 3, 4, 5].forEach((n) => b.push(msg(n), n, n % 2 === 0 ? "even" : "odd"));
    expect((await b.next())!.map((e) => e.item)).toEqual([1, 3, 5]);
    expect((await b.next())!.map((e) => e.item)).toEqual([2, 4]);
    expect(b.size).toBe(0);
  });

  it("waits at most maxWaitMs for a batch to fill", async () => {
    const b = new TaskBatcher<number>(4, 50);
    b.push(msg(1), 1, "k");
    setTimeout(() => b.push(msg(2), 2, "k"), 10);
    const started = Date.now();
    const batch = await b.next();
    expect(batch!.map((e) => e.item)).toEqual([1, 2]);
    expect(Date.now() - started).toBeGreaterThanOrEqual(45);
  });

  it("returns at once when the batch is full", async () => {
    const b = new TaskBatcher<number>(2, 10_000);
    b.push(msg(1), 1, "k");
    b.push(msg(2), 2, "k");
    const started = Date.now();
    expect((await b.next())!.length).toBe(2);
    expect(Date.now() - started).toBeLessThan(1000);
  });

  it("ends waiting on close, but still hands out what it holds, without waiting for batches to fill", async () => {
    const b = new TaskBatcher<number>(2, 10_000);
    const waiting = b.next();
    b.close();
    expect(await waiting).toBeUndefined();
    const c = new TaskBatcher<number>(4, 10_000);
    c.push(msg(7), 7, "k");
    c.push(msg(8), 8, "j");
    c.close();
    const started = Date.now();
    expect((await c.next())!.map((e) => e.item)).toEqual([7]);
    expect((await c.next())!.map((e) => e.item)).toEqual([8]);
    expect(await c.next()).toBeUndefined();
    expect(Date.now() - started).toBeLessThan(1000);
  });

  it("does not wait for batch-mates when the server has no more tasks waiting", async () => {
    const delivered = (seq: number, pending: number) => ({ seq, info: { pending } }) as unknown as JsMsg;
    const b = new TaskBatcher<number>(4, 10_000);
    b.push(delivered(1, 1), 1, "k");
    b.push(delivered(2, 0), 2, "k");
    const started = Date.now();
    expect((await b.next())!.map((e) => e.item)).toEqual([1, 2]);
    expect(Date.now() - started).toBeLessThan(1000);
    // With tasks still waiting on the server, it waits (up to maxWaitMs) for them to arrive.
    const c = new TaskBatcher<number>(4, 50);
    c.push(delivered(3, 5), 3, "k");
    const waited = Date.now();
    await c.next();
    expect(Date.now() - waited).toBeGreaterThanOrEqual(45);
  });
});
