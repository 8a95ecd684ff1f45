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

/**
 * Largest image (PNG bytes) a task carries to the next stage. The farm's 64 and 256 px images are a few kB to about
 * 100 kB; NATS refuses messages over its max_payload (1 MiB by default), and the tasks wait in the stream.
 */
export const INLINE_IMAGE_MAX_BYTES = 256 * 1024;

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
      imagePng: new Uint8Array(0),
      enqueuedAtMs: BigInt(Date.now()),
    });
    const following = next.route[0];
    if (following === undefined && !("png" in output)) {
      throw new FarmError(GrpcStatus.INTERNAL, `stage ${stageName(stage)} produced no image but ends the route`);
    }
    faultPoint("before-store");
    let produced;
    let stored: Promise<void> = Promise.resolve();
    if ("png" in output) {
      const size = stageOutputSize(stage);
      produced = imageRef(task.index, size, renderKey(task.jobId, task.index, size), task.seed);
      next.imageKey = produced.key;
      if (output.png.length <= INLINE_IMAGE_MAX_BYTES) next.imagePng = output.png;
      stored = store.put(produced.key, output.png);
    } else {
      next.imageEmbedding = output.embedding;
      next.sourceEmbeddings = output.sourceEmbeddings;
    }
    // A next stage that reads the image from its task need not wait for the store: the write and the publish run
    // together. The task is acked only once both are done, and a redelivery repeats both (same key, same message id).
    const published = (async () => {
      if (following === undefined) return;
      if (next.imagePng.length === 0) await stored;
      await conn.js.publish(taskSubject(stagePool(following), task.lane), toBinary(StageTaskSchema, next), {
        msgID: `${task.jobId}.${task.index}.${stageName(following)}`,
        timeout: NATS_REQUEST_TIMEOUT_MS,
      });
    })();
    await Promise.all([stored, published]);
    faultPoint("after-store");
    // Announced once stored: a client may fetch the preview as soon as it hears of it.
    if (produced && following !== undefined) publishEvent(conn.nc, task.jobId, { case: "preview", value: produced });
    publishEvent(conn.nc, task.jobId, stageFinishedEvent(timing, produced));
    if (following === undefined && produced) {
      const job = await recordImage(this.deps.jobs, conn.nc, next, produced, next.timings);
      if (job && job.images.length >= job.numImages) {
        metrics.jobSeconds.observe(jobLabels(job, task, "succeeded"), (Date.now() - Number(job.createdAtMs)) / 1000);
      }
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
