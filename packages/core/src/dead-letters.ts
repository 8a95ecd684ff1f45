import { setTimeout as sleep } from "node:timers/promises";
import { AckPolicy, DeliverPolicy, type ConsumerMessages, type JsMsg } from "@nats-io/jetstream";
import { fromBinary, stageName, StageTaskSchema } from "@unclip/protocol";
import { backoffDelay } from "./failure-policy.js";
import { failJob } from "./job-progress.js";
import { JobStore } from "./job-store.js";
import type { Logger } from "./logger.js";
import { DEAD_LETTER_CONSUMER, DEAD_LETTER_STREAM, TASK_STREAM, type FarmConnection } from "./nats.js";

interface MaxDeliveriesAdvisory {
  stream_seq: number;
  consumer: string;
  deliveries: number;
}

/** Delays before a dead letter that could not be handled is tried again. */
const RETRY_MS = [1_000, 5_000, 30_000];

export interface DeadLetterWatch {
  /** Stops taking dead letters; one being handled is finished first. */
  stop(): Promise<void>;
}

/**
 * Fails the job of a task that ran out of deliveries without an answer (its workers kept crashing or hanging),
 * and removes the task from the stream. JetStream announces such a task with a max-deliveries advisory, which
 * FARM_DEAD_LETTERS keeps; every farm process (gateway and workers) reads it through one shared durable consumer,
 * so each advisory is handled once, by whichever process is up, even one that starts after it fired.
 */
export function watchDeadLetters(conn: FarmConnection, log: Logger): DeadLetterWatch {
  const jobs = new JobStore(conn.jobs);
  let messages: ConsumerMessages | undefined;
  let stopped = false;
  const stopping = new AbortController();

  const handle = async (msg: JsMsg): Promise<void> => {
    let advisory: MaxDeliveriesAdvisory;
    try {
      advisory = msg.json<MaxDeliveriesAdvisory>();
    } catch {
      msg.term("not a max-deliveries advisory");
      return;
    }
    try {
      const stored = await conn.jsm.streams.getMessage(TASK_STREAM, { seq: advisory.stream_seq });
      // Gone already: another process handled it, or the task was acked after all.
      if (stored) {
        const task = fromBinary(StageTaskSchema, stored.data);
        const stage = task.route[0] !== undefined ? stageName(task.route[0]) : "unknown";
        const reason = `the ${stage} stage of image ${task.index} was delivered ${advisory.deliveries} times without finishing (its workers crashed or timed out)`;
        log.warn({ jobId: task.jobId, consumer: advisory.consumer, seq: advisory.stream_seq }, reason);
        await failJob(jobs, conn.nc, task.jobId, reason);
        await conn.jsm.streams.deleteMessage(TASK_STREAM, advisory.stream_seq).catch((err: unknown) => {
          if (!/no message found/i.test(String(err))) throw err;
        });
      }
      await msg.ackAck();
    } catch (err) {
      log.error({ err, advisory }, "could not handle a max-deliveries advisory: retrying it");
      msg.nak(backoffDelay(msg.info.deliveryCount, RETRY_MS));
    }
  };

  const run = async (): Promise<void> => {
    for (let failures = 0; !stopped; ) {
      try {
        await ensureDeadLetterConsumer(conn);
        const consumer = await conn.js.consumers.get(DEAD_LETTER_STREAM, DEAD_LETTER_CONSUMER);
        messages = await consumer.consume({ max_messages: 16 });
        if (stopped) messages.stop();
        failures = 0;
        for await (const msg of messages) await handle(msg);
        if (!stopped) throw new Error("the dead-letter consumer stopped delivering");
      } catch (err) {
        if (stopped) return;
        log.warn({ err }, "reading dead letters failed: retrying");
        await sleep(backoffDelay(++failures, RETRY_MS), undefined, { signal: stopping.signal }).catch(() => undefined);
      }
    }
  };
  const loop = run();
  return {
    stop: async () => {
      stopped = true;
      stopping.abort();
      messages?.stop();
      await loop;
    },
  };
}

async function ensureDeadLetterConsumer(conn: FarmConnection): Promise<void> {
  await conn.jsm.consumers
    .add(DEAD_LETTER_STREAM, {
      durable_name: DEAD_LETTER_CONSUMER,
      ack_policy: AckPolicy.Explicit,
      deliver_policy: DeliverPolicy.All,
      ack_wait: 30_000_000_000,
    })
    .catch((e: unknown) => {
      // Every farm process runs this; the first one creates it.
      if (!/already in use|already exists/i.test(String(e))) throw e;
    });
}
