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
  Lane,
  Stage,
  type JobKind,
} from "@unclip/protocol";
import { inputKey, JobStore, taskSubject, type FarmConnection, type ObjectStore } from "@unclip/core";
import type { AdmissionGate, JobWork } from "./admission-gate.js";
import type { CommonParams } from "./request-validation.js";
import type { ServiceRates } from "./service-rates.js";

export interface Admission {
  kind: JobKind;
  prompt: string;
  params: CommonParams;
  /** Stages of every image's route, first stage first. */
  route: Stage[];
  source?: Uint8Array;
  mask?: Uint8Array;
  /** Interactive (default) or batch: the lane of every pool the job's tasks travel in. */
  lane?: Lane;
}

/**
 * Admits a job: passes it through the admission gate (whole-farm backlog, weighed by work), stores its inputs,
 * writes the QUEUED record to the job bucket, and publishes one task per image to the first stage's queue. Task ids
 * are deterministic, so a retried admission cannot double the work; admitting a job id whose record exists (a batch
 * item re-admitted after its gateway died) republishes its tasks only while the job is still QUEUED.
 */
export class JobAdmission {
  readonly jobs: JobStore;

  constructor(
    private readonly conn: FarmConnection,
    private readonly store: ObjectStore,
    private readonly gate: AdmissionGate,
    private readonly rates: ServiceRates,
  ) {
    this.jobs = new JobStore(conn.jobs);
  }

  newJobId(): string {
    return randomUUID();
  }

  /** Admits the job; returns its QUEUED record and its ETA in seconds. */
  async admit(jobId: string, a: Admission): Promise<{ job: Job; etaSeconds: number }> {
    return this.gate.admit(this.work(a), async (etaSeconds) => ({ job: await this.enqueue(jobId, a), etaSeconds }));
  }

  /** The job's tasks and worker-seconds per pool: images × stages, each stage at its measured rate and steps. */
  private work(a: Admission): JobWork {
    const work: JobWork = new Map();
    const { numImages, sampling } = a.params;
    for (const stage of a.route) {
      const steps = stage === Stage.PRIOR ? sampling.priorSteps : stage === Stage.DECODER ? sampling.decoderSteps : 0;
      const pool = stagePool(stage);
      const w = work.get(pool) ?? { tasks: 0, seconds: 0 };
      work.set(pool, { tasks: w.tasks + numImages, seconds: w.seconds + numImages * this.rates.taskSeconds(stage, steps) });
    }
    return work;
  }

  private async enqueue(jobId: string, a: Admission): Promise<Job> {
    const first = a.route[0]!;
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
    try {
      await this.jobs.create(job);
    } catch (err) {
      const existing = await this.jobs.get(jobId);
      if (!existing) throw err;
      if (existing.state !== JobState.QUEUED) return existing;
    }
    for (let index = 0; index < a.params.numImages; index++) {
      const task = create(StageTaskSchema, {
        jobId,
        index,
        seed: BigInt.asUintN(64, a.params.seed + BigInt(index)),
        route: a.route,
        params,
        enqueuedAtMs: BigInt(Date.now()),
        lane: a.lane ?? Lane.INTERACTIVE,
      });
      await this.conn.js.publish(taskSubject(stagePool(first), task.lane), toBinary(StageTaskSchema, task), {
        msgID: `${jobId}.${index}.${stageName(first)}`,
      });
    }
    const queuedAtMs = BigInt(Date.now());
    return (
      (await this.jobs.update(jobId, (j) => {
        if (j.queuedAtMs > 0n) return undefined;
        j.queuedAtMs = queuedAtMs;
        return j;
      })) ?? job
    );
  }
}
