import { randomBytes, randomUUID } from "node:crypto";
import { setTimeout as sleep } from "node:timers/promises";
import type { FarmConnection, ObjectStore } from "@unclip/core";
import { percentiles, type Percentiles } from "./stats.js";

/** Bare JetStream for one payload size: publish → delivery to an open pull → ackAck, as one cycle. */
export interface JsFloor {
  readonly bytes: number;
  /** Publish start to ackAck done (and PubAck in): the floor of a hop's NATS part. */
  readonly cycleMs: Percentiles;
  /** Publish start to the message reaching the waiting pull. */
  readonly deliverMs: Percentiles;
  /** ackAck round trip. */
  readonly ackMs: Percentiles;
}

/** Bare S3 put and get of one PNG's bytes. */
export interface S3Floor {
  readonly size: number;
  readonly bytes: number;
  readonly putMs: Percentiles;
  readonly getMs: Percentiles;
}

export interface TransportFloor {
  readonly js: readonly JsFloor[];
  readonly s3: readonly S3Floor[];
}

const WARM_UP = 10;

/**
 * The transport floor on the farm's own nats-server and S3 server: a raw work-queue stream and pull consumer made
 * for this (file storage, the task stream's duplicate window, explicit acks, as FARM_TASKS and its consumers), and
 * puts and gets of the very PNGs the farm stored. Nothing of the farm's runtime runs: no protobuf, no job record,
 * no batcher.
 */
export async function measureFloor(
  conn: FarmConnection,
  store: ObjectStore,
  payloadSizes: readonly number[],
  pngs: readonly { size: number; bytes: Uint8Array }[],
  samples: number,
): Promise<TransportFloor> {
  const js: JsFloor[] = [];
  const id = randomUUID().slice(0, 8);
  const stream = `BENCH_FLOOR_${id}`;
  const subject = `bench.floor.${id}`;
  await conn.jsm.streams.add({
    name: stream,
    subjects: [subject],
    retention: "workqueue",
    storage: "file",
    num_replicas: conn.replicas,
    duplicate_window: 10 * 60 * 1_000_000_000,
  });
  try {
    await conn.jsm.consumers.add(stream, { durable_name: "floor", ack_policy: "explicit", ack_wait: 30_000_000_000, max_deliver: 5 });
    const consumer = await conn.js.consumers.get(stream, "floor");
    let seq = 0;
    for (const bytes of payloadSizes) {
      const payload = randomBytes(bytes);
      const cycle: number[] = [];
      const deliver: number[] = [];
      const ack: number[] = [];
      for (let i = 0; i < WARM_UP + samples; i++) {
        const next = consumer.next({ expires: 5_000 });
        // The pull request reaches the server before the publish, as a worker's open pull does.
        await sleep(2);
        const t0 = performance.now();
        const published = conn.js.publish(subject, payload, { msgID: `floor.${++seq}` });
        const msg = await next;
        const t1 = performance.now();
        if (!msg) throw new Error("the floor's pull request expired without the message");
        await msg.ackAck();
        const t2 = performance.now();
        await published;
        const t3 = performance.now();
        if (i < WARM_UP) continue;
        cycle.push(t3 - t0);
        deliver.push(t1 - t0);
        ack.push(t2 - t1);
      }
      js.push({ bytes, cycleMs: percentiles(cycle), deliverMs: percentiles(deliver), ackMs: percentiles(ack) });
    }
  } finally {
    await conn.jsm.streams.delete(stream).catch(() => undefined);
  }

  const s3: S3Floor[] = [];
  const s3Samples = Math.max(10, Math.round(samples / 4));
  for (const { size, bytes } of pngs) {
    const put: number[] = [];
    const get: number[] = [];
    for (let i = 0; i < 3 + s3Samples; i++) {
      const key = `bench-floor/${id}/${size}/${i}.png`;
      const t0 = performance.now();
      await store.put(key, bytes);
      const t1 = performance.now();
      await store.get(key);
      const t2 = performance.now();
      if (i < 3) continue;
      put.push(t1 - t0);
      get.push(t2 - t1);
    }
    s3.push({ size, bytes: bytes.length, putMs: percentiles(put), getMs: percentiles(get) });
  }
  return { js, s3 };
}
