import { randomUUID } from "node:crypto";
import {
  create,
  stagePool,
  stageName,
  toBinary,
  JobParamsSchema,
  JobSchema,
  JobState,
  OutputOptionsSchema,
  StageTaskSchema,
  type Job,
  type JobKind,
  type Stage,
} from "@unclip/protocol";
import { FarmError, GrpcStatus, inputKey, JobStore, poolBacklog, taskSubject, type FarmConnection, type ObjectStore } from "@unclip/core";
import type { CommonParams } from "./request-validation.js";

export interface Admission {
  kind: JobKind;
  prompt: string;
  params: CommonParams;
  /** Stages of every image's route, first stage first. */
  route: Stage[];
  source?: Uint8Array;
  mask?: Uint8Array;
}

/**
 * Admits a job: stores its inputs, writes the QUEUED record to the job bucket, and publishes one task per image
 * to the first stage's queue. Task ids are deterministic, so a retried admission cannot double the work.
 */
export class JobAdmission {
  readonly jobs: JobStore;

  constructor(
    private readonly conn: FarmConnection,
    private readonly store: ObjectStore,
    private readonly maxQueuedTasks: number,
  ) {
    this.jobs = new JobStore(conn.jobs);
  }

  newJobId(): string {
    return randomUUID();
  }

  async admit(jobId: string, a: Admission): Promise<Job> {
    const first = a.route[0]!;
    const backlog = await poolBacklog(this.conn.jsm, stagePool(first));
    if (backlog.pending + a.params.numImages > this.maxQueuedTasks) {
      throw new FarmError(
        GrpcStatus.RESOURCE_EXHAUSTED,
        `the ${stagePool(first)} queue holds ${backlog.pending} tasks (limit ${this.maxQueuedTasks}); retry later`,
        true,
      );
    }
    const now = BigInt(Date.now());
    const params = create(JobParamsSchema, {
      kind: a.kind,
      prompt: a.prompt,
      numImages: a.params.numImages,
      size: a.params.size,
      ...a.params.sampling,
      output: create(OutputOptionsSchema, { includeBytes: a.params.includeBytes, urlTtlSeconds: a.params.urlTtlSeconds }),
      createdAtMs: now,
    });
    if (a.source) {
      params.sourceKey = inputKey(jobId, "source");
      await this.store.put(params.sourceKey, a.source, "application/octet-stream");
    }
    if (a.mask) {
      params.maskKey = inputKey(jobId, "mask");
      await this.store.put(params.maskKey, a.mask, "application/octet-stream");
    }
    const job = create(JobSchema, {
      jobId,
      kind: a.kind,
      state: JobState.QUEUED,
      prompt: a.prompt,
      numImages: a.params.numImages,
      size: a.params.size,
      seed: a.params.seed,
      createdAtMs: now,
      updatedAtMs: now,
    });
    await this.jobs.create(job);
    for (let index = 0; index < a.params.numImages; index++) {
      const task = create(StageTaskSchema, {
        jobId,
        index,
        seed: BigInt.asUintN(64, a.params.seed + BigInt(index)),
        route: a.route,
        params,
        enqueuedAtMs: BigInt(Date.now()),
      });
      await this.conn.js.publish(taskSubject(stagePool(first)), toBinary(StageTaskSchema, task), {
        msgID: `${jobId}.${index}.${stageName(first)}`,
      });
    }
    return job;
  }
}
