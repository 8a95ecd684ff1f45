import { setTimeout as sleep } from "node:timers/promises";
import { startNatsServer, type NatsServerHandle } from "@unclip/devstack";
import { create, JobSchema, JobState, type Job } from "@unclip/protocol";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { connectFarm, JOB_BUCKET, JobStore, openBucket, type FarmConnection } from "../src/index.js";

let nats: NatsServerHandle;
beforeAll(async () => {
  nats = await startNatsServer();
});
afterAll(async () => {
  await nats?.stop();
});

async function until(what: string, done: () => boolean, timeoutMs = 15_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!done()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(50);
  }
}

const subscriptionsOf = async (name: string): Promise<number> => {
  const connz = (await (await fetch(`${nats.monitorUrl}/connz?subs=1`)).json()) as {
    connections: { name?: string; subscriptions_list?: string[] }[];
  };
  return connz.connections.find((c) => c.name === name)?.subscriptions_list?.length ?? 0;
};

describe("JobStore.watch", () => {
  it("gives the record now and each change, holds one subscription and no consumer, and lets both go on stop", async () => {
    const conn = await connectFarm(nats.url, "watch-basics");
    try {
      const jobs = new JobStore(conn.jobs);
      const jobId = `watch-${Date.now()}`;
      await jobs.create(create(JobSchema, { jobId, state: JobState.QUEUED, numImages: 1 }));
      const before = await subscriptionsOf("watch-basics");
      const seen: JobState[] = [];
      const stop = await jobs.watch(
        conn.nc,
        jobId,
        (j) => seen.push(j.state),
        () => undefined,
      );
      expect(seen).toEqual([JobState.QUEUED]);
      expect(await subscriptionsOf("watch-basics")).toBe(before + 1);
      let consumers = 0;
      for await (const _ of conn.jsm.consumers.list(`KV_${JOB_BUCKET}`)) consumers++;
      expect(consumers).toBe(0);
      await jobs.update(jobId, (j) => ({ ...j, state: JobState.SUCCEEDED }));
      await until("the update", () => seen.length === 2);
      expect(seen).toEqual([JobState.QUEUED, JobState.SUCCEEDED]);
      stop();
      await conn.nc.flush();
      expect(await subscriptionsOf("watch-basics")).toBe(before);
    } finally {
      await conn.nc.close();
    }
  });

  it("catches up after a nats-server restart with the change it missed while disconnected", async () => {
    const watcher = await connectFarm(nats.url, "watch-restart");
    let writer: FarmConnection | undefined;
    try {
      const jobs = new JobStore(watcher.jobs);
      const jobId = `restart-${Date.now()}`;
      await jobs.create(create(JobSchema, { jobId, state: JobState.RUNNING, numImages: 1 }));
      let last: Job | undefined;
      let ended: Error | undefined;
      await jobs.watch(
        watcher.nc,
        jobId,
        (j) => (last = j),
        (e) => (ended = e),
      );
      await nats.kill();
      await nats.restart();
      // Written by another process before the watcher is back: no message for it ever reaches the watcher.
      writer = await connectFarm(nats.url, "watch-restart-writer");
      await new JobStore(writer.jobs).update(jobId, (j) => ({ ...j, state: JobState.CANCELLED }));
      await until("the catch-up after the reconnect", () => last?.state === JobState.CANCELLED, 30_000);
      expect(ended).toBeUndefined();
    } finally {
      await writer?.nc.close();
      await watcher.nc.close();
    }
  }, 40_000);

  it("tells the caller when the connection closes under the watch", async () => {
    const conn = await connectFarm(nats.url, "watch-close");
    const jobs = new JobStore(conn.jobs);
    const jobId = `close-${Date.now()}`;
    await jobs.create(create(JobSchema, { jobId, state: JobState.RUNNING }));
    let ended: Error | undefined;
    await jobs.watch(
      conn.nc,
      jobId,
      () => undefined,
      (e) => (ended = e),
    );
    await conn.nc.close();
    await until("the end", () => ended !== undefined);
    expect(ended?.message).toMatch(/ended/);
  });
});

describe("record buckets' TTL", () => {
  it("follows the owner's configuration whichever process started first", async () => {
    const seconds = async (conn: FarmConnection, name: string) => (await conn.jsm.streams.info(`KV_${name}`)).config.max_age / 1e9;
    // A worker with defaults (7 days) starts first, and keeps running after the gateway (owner) set 1 hour.
    const worker = await connectFarm(nats.url, "ttl-worker");
    const gateway = await connectFarm(nats.url, "ttl-gateway", { jobTtlSeconds: 3600, owner: true });
    await openBucket(gateway.nc, gateway.jsm, "ttl_batches", { ttlSeconds: 3600, replicas: 1, enforce: true });
    try {
      expect(await seconds(gateway, JOB_BUCKET)).toBe(3600);
      expect(await seconds(gateway, "ttl_batches")).toBe(3600);
      // A worker (re)starting later with its defaults does not undo it, nor does another opener of a batch bucket.
      const late = await connectFarm(nats.url, "ttl-late-worker");
      await openBucket(late.nc, late.jsm, "ttl_batches", { ttlSeconds: 7 * 24 * 3600, replicas: 1 });
      expect(await seconds(gateway, JOB_BUCKET)).toBe(3600);
      expect(await seconds(gateway, "ttl_batches")).toBe(3600);
      await late.nc.close();
    } finally {
      await worker.nc.close();
      await gateway.nc.close();
    }
  });
});
