import type { Subscription } from "@nats-io/transport-node";
import { fromBinary, stageName, StageTaskSchema } from "@unclip/protocol";
import { failJob } from "./job-progress.js";
import { JobStore } from "./job-store.js";
import type { Logger } from "./logger.js";
import { TASK_STREAM, type FarmConnection } from "./nats.js";

interface MaxDeliveriesAdvisory {
  stream_seq: number;
  consumer: string;
  deliveries: number;
}

/**
 * Fails the job of a task that ran out of deliveries without an answer (its workers kept crashing or hanging),
 * and removes the task from the stream. Every farm process listens in one queue group, so the job fails even
 * when no worker of the task's own pool is alive.
 */
export function watchDeadLetters(conn: FarmConnection, log: Logger): Subscription {
  const jobs = new JobStore(conn.jobs);
  return conn.nc.subscribe(`$JS.EVENT.ADVISORY.CONSUMER.MAX_DELIVERIES.${TASK_STREAM}.*`, {
    queue: "farm-dead-letters",
    callback: (_err, msg) => {
      const advisory = msg.json<MaxDeliveriesAdvisory>();
      void (async () => {
        const stored = await conn.jsm.streams.getMessage(TASK_STREAM, { seq: advisory.stream_seq });
        if (!stored) return;
        const task = fromBinary(StageTaskSchema, stored.data);
        const stage = task.route[0] !== undefined ? stageName(task.route[0]) : "unknown";
        const reason = `the ${stage} stage of image ${task.index} was delivered ${advisory.deliveries} times without finishing (its workers crashed or timed out)`;
        log.warn({ jobId: task.jobId, consumer: advisory.consumer, seq: advisory.stream_seq }, reason);
        await failJob(jobs, conn.nc, task.jobId, reason);
        await conn.jsm.streams.deleteMessage(TASK_STREAM, advisory.stream_seq);
      })().catch((err: unknown) => log.error({ err, advisory }, "could not handle a max-deliveries advisory"));
    },
  });
}
