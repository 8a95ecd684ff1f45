import type { JsMsg } from "@nats-io/jetstream";
import {
  create,
  stageName,
  stageOutputSize,
  stagePool,
  toBinary,
  JobKind,
  Lane,
  StageTaskSchema,
  StageTimingSchema,
  type Job,
  type StageTask,
  type StageTiming,
} from "@unclip/protocol";
import { FarmError, GrpcStatus } from "./errors.js";
import { publishEvent } from "./events.js";
import { decideFailure, type FailureSettings } from "./failure-policy.js";
import { faultPoint } from "./fault-points.js";
import type { JobCancellations } from "./job-cancellations.js";
import { failJob, imageRef, recordImage, stageFinishedEvent } from "./job-progress.js";
import type { JobStore } from "./job-store.js";
import type { Logger } from "./logger.js";
import type { WorkerMetrics } from "./metrics.js";
import { NATS_REQUEST_TIMEOUT_MS, taskSubject, type FarmConnection } from "./nats.js";
import { renderKey, type ObjectStore } from "./object-store.js";
import type { HeldTask, StageHandler, StageOutput } from "./stage-handler.js";

export interface HandOffDeps {
  readonly conn: FarmConnection;
  readonly store: ObjectStore;
  readonly jobs: JobStore;
  readonly handler: Pick<StageHandler, "pool" | "bundle">;
  readonly workerName: string;
  readonly failure: FailureSettings;
  readonly cancellations: JobCancellations;
  readonly metrics: WorkerMetrics;
  readonly log: Logger;
  /** True once the worker is forced to stop: failures then release tasks without blaming them. */
  readonly forcedToStop: () => boolean;
}

/**
 * Hands one finished task on along its routing slip: stores its image, publishes the next stage's task (or records
 * the image in the job), then acks. Each step is idempotent (deterministic keys, publish ids, replacing records),
 * so a crash between two steps is repaired by redelivery; the fault points sit between them for the chaos suite.
 * A failed step, or a failed stage, goes through the failure policy (retry with backoff, fail the job, or drop).
 */
export class TaskHandOff {
  constructor(private readonly deps: HandOffDeps) {}

  /** Never rejects: whatever goes wrong ends in a retry, a failed job or a dropped task. */
  async handOn(msg: JsMsg, item: HeldTask, output: StageOutput | Error, started: number): Promise<void> {
    try {
      if (output instanceof Error) return await this.fail(msg, item, output);
      if (this.deps.cancellations.isCancelled(item.task.jobId)) return this.drop(msg, item, "job cancelled");
      await this.finish(msg, item, output, started);
    } catch (err) {
      this.deps.log.error({ err, jobId: item.task.jobId }, "could not hand the task on");
      await this.fail(msg, item, err).catch((e: unknown) => {
        // Not even the job record could be written (NATS is down): the task's ack wait brings it back.
        this.deps.log.error({ err: e, jobId: item.task.jobId }, "could not settle a failed task: it will be redelivered");
      });
    }
  }

  private async finish(msg: JsMsg, item: HeldTask, output: StageOutput, started: number): Promise<void> {
    const { conn, store, handler, metrics } = this.deps;
    const { task, stage } = item;
    const timing: StageTiming = create(StageTimingSchema, {
      stage,
      index: task.index,
      seconds: (Date.now() - started) / 1000,
      queueSeconds: Math.max(0, started - Number(task.enqueuedAtMs)) / 1000,
      worker: this.deps.workerName,
    });
    const next: StageTask = create(StageTaskSchema, {
      ...task,
      route: task.route.slice(1),
      timings: [...task.timings, timing],
      bundles: [...new Set([...task.bundles, `${stageName(stage)}=${output.bundle ?? handler.bundle}`])],
      imageEmbedding: undefined,
      sourceEmbeddings: undefined,
      imageKey: "",
      enqueuedAtMs: BigInt(Date.now()),
    });
    faultPoint("before-store");
    let produced;
    if ("png" in output) {
      const size = stageOutputSize(stage);
      const key = renderKey(task.jobId, task.index, size);
      await store.put(key, output.png);
      produced = imageRef(task.index, size, key, task.seed);
      next.imageKey = key;
      if (next.route.length > 0) publishEvent(conn.nc, task.jobId, { case: "preview", value: produced });
    } else {
      next.imageEmbedding = output.embedding;
      next.sourceEmbeddings = output.sourceEmbeddings;
    }
    faultPoint("after-store");
    publishEvent(conn.nc, task.jobId, stageFinishedEvent(timing, produced));
    const following = next.route[0];
    if (following !== undefined) {
      await conn.js.publish(taskSubject(stagePool(following), task.lane), toBinary(StageTaskSchema, next), {
        msgID: `${task.jobId}.${task.index}.${stageName(following)}`,
        timeout: NATS_REQUEST_TIMEOUT_MS,
      });
    } else if (produced) {
      const job = await recordImage(this.deps.jobs, conn.nc, next, produced, next.timings);
      if (job && job.images.length >= job.numImages) {
        metrics.jobSeconds.observe(jobLabels(job, task, "succeeded"), (Date.now() - Number(job.createdAtMs)) / 1000);
      }
    } else {
      throw new FarmError(GrpcStatus.INTERNAL, `stage ${stageName(stage)} produced no image but ends the route`);
    }
    faultPoint("after-publish");
    faultPoint("before-ack");
    await msg.ackAck({ timeout: NATS_REQUEST_TIMEOUT_MS });
    metrics.tasks.inc({ ...this.labels(item), outcome: "ok" });
  }

  private async fail(msg: JsMsg, item: HeldTask, err: unknown): Promise<void> {
    const { task, stage } = item;
    const decision = decideFailure(
      err,
      {
        attempt: msg.info.deliveryCount,
        cancelled: this.deps.cancellations.isCancelled(task.jobId),
        stopping: this.deps.forcedToStop(),
        stage: stageName(stage),
        index: task.index,
      },
      this.deps.failure,
    );
    const labels = this.labels(item);
    switch (decision.action) {
      case "cancel":
        return this.drop(msg, item, decision.reason);
      case "retry":
        this.deps.log.warn(
          { jobId: task.jobId, index: task.index, attempt: msg.info.deliveryCount, delayMs: decision.delayMs, err },
          "task failed: retrying",
        );
        msg.nak(decision.delayMs);
        this.deps.metrics.tasks.inc({ ...labels, outcome: "retried" });
        return;
      case "fail": {
        this.deps.log.warn({ jobId: task.jobId, index: task.index, err }, decision.reason);
        const job = await failJob(this.deps.jobs, this.deps.conn.nc, task.jobId, decision.reason);
        if (job?.error === decision.reason) {
          this.deps.metrics.jobSeconds.observe(jobLabels(job, task, "failed"), (Date.now() - Number(job.createdAtMs)) / 1000);
        }
        msg.term(decision.reason.slice(0, 200));
        this.deps.metrics.tasks.inc({ ...labels, outcome: "failed" });
      }
    }
  }

  /** Drops a task of a job that ended (cancelled): nothing more is written for it. */
  drop(msg: JsMsg, item: HeldTask, reason: string): void {
    msg.term(reason);
    this.deps.metrics.tasks.inc({ ...this.labels(item), outcome: "cancelled" });
  }

  private labels(item: HeldTask) {
    return { pool: this.deps.handler.pool, stage: stageName(item.stage) };
  }
}

function jobLabels(job: Job, task: StageTask, outcome: "succeeded" | "failed") {
  const kind = (JobKind[job.kind] ?? "unknown").toLowerCase();
  return { kind, outcome, size: String(job.size), lane: task.lane === Lane.BATCH ? "batch" : "interactive" };
}
