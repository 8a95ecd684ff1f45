import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { JsMsg } from "@nats-io/jetstream";
import {
  connectFarm,
  createLogger,
  ensurePoolConsumer,
  poolBacklog,
  poolConsumer,
  TaskPuller,
  taskSubject,
  TASK_STREAM,
  type FarmConnection,
} from "@unclip/core";
import { startNatsServer, type NatsServerHandle } from "@unclip/devstack";

let nats: NatsServerHandle;
let conn: FarmConnection;
beforeAll(async () => {
  nats = await startNatsServer();
  conn = await connectFarm(nats.url, "task-puller-test");
});
afterAll(async () => {
  await conn?.nc.close();
  await nats?.stop();
});

const until = async (cond: () => boolean | Promise<boolean>, ms = 5000) => {
  const deadline = Date.now() + ms;
  while (!(await cond())) {
    if (Date.now() > deadline) throw new Error("condition not met in time");
    await new Promise((r) => setTimeout(r, 20));
  }
};

describe("TaskPuller on a real nats-server", () => {
  it("holds at most its capacity and leaves the rest of the queue to other workers", async () => {
    await ensurePoolConsumer(conn.jsm, "decoder", { ackWaitMs: 30_000, maxDeliver: 5 });
    for (let i = 0; i < 20; i++) await conn.js.publish(taskSubject("decoder"), new Uint8Array([i]));
    const consumer = await conn.js.consumers.get(TASK_STREAM, poolConsumer("decoder"));
    const log = createLogger("test", "error");
    const held: [JsMsg[], JsMsg[]] = [[], []];
    const a = new TaskPuller({ interactive: consumer }, async (m) => void held[0].push(m), log, { capacity: 3, expiresMs: 1000 });
    const b = new TaskPuller({ interactive: consumer }, async (m) => void held[1].push(m), log, { capacity: 5, expiresMs: 1000 });
    a.start();
    b.start();
    await until(() => held[0].length === 3 && held[1].length === 5);
    // Longer than a pull request's life: a worker with no room asks for nothing more.
    await new Promise((r) => setTimeout(r, 1500));
    expect([held[0].length, held[1].length]).toEqual([3, 5]);
    expect(await poolBacklog(conn.jsm, "decoder")).toEqual({ pending: 12, inFlight: 8 });

    // Finishing tasks frees room, and the worker pulls exactly that much again.
    for (const m of held[0].splice(0)) await m.ackAck();
    a.window.release(3);
    await until(() => held[0].length === 3);
    await until(async () => (await poolBacklog(conn.jsm, "decoder")).pending === 9);
    expect(a.window.held + a.window.requested).toBeLessThanOrEqual(3);

    // Stopping waits out the open pull requests; what the workers held goes back, and a new worker gets it all.
    await Promise.all([a.stop(), b.stop()]);
    for (const m of [...held[0], ...held[1]]) m.nak();
    const later: JsMsg[] = [];
    const c = new TaskPuller({ interactive: consumer }, async (m) => void later.push(m), log, { capacity: 20, expiresMs: 1000 });
    c.start();
    await until(() => later.length === 17);
    await Promise.all(later.map((m) => m.ackAck()));
    await c.stop();
    expect(await poolBacklog(conn.jsm, "decoder")).toEqual({ pending: 0, inFlight: 0 });
  });
});
