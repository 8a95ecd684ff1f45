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
  type StageTask,
  JobKind,
  Lane,
  Stage,
} from "@unclip/protocol";
import { faultPoint, inputKey, isTerminal, JobStore, taskSubject, type FarmConnection, type ObjectStore } from "@unclip/core";
import type { AdmissionGate, JobWork } from "./admission-gate.js";
import type { CommonParams } from "./request-validation.js";
import type { PendingAdmissions } from "./job-reconciler.js";
import type { ServiceRates } from "./service-rates.js";
import type { TenantQuota } from "./tenant-quota.js";

export interface Admission {
  kind: JobKind;
  prompt: string;
  params: CommonParams;
  /** Stages of every image's route, first stage first. */
  route: Stage[];
  source?: Uint8Array;
  mask?: Uint8Array;
  /** What InterpolateImages and TransformImage add to a job (JobParams). */
  manipulation?: Manipulation;
  /** Interactive (default) or batch: the lane of every pool the job's tasks travel in. */
  lane?: Lane;
  /** The tenant that owns the job ("" on an open farm). */
  tenant?: string;
}

export interface Manipulation {
  /** An interpolation's second source (the first is `source`). */
  sourceB?: Uint8Array;
  /** Start from the DDIM inversion of the source(s). */
  invertSources: boolean;
  /** A transform's from_caption (`prompt` holds to_caption) and strength, defaults applied. */
  fromPrompt?: string;
  strength?: number;
}

/**
 * Admits a job: passes it through the admission gate (whole-farm backlog, weighed by work), stores its inputs,
 * records the admission as under way (PendingAdmissions), writes the QUEUED record to the job bucket, publishes one
 * task per image to the first stage's queue, sets Job.queued_at_ms and removes the under-way entry. A gateway that
 * dies between record and publish leaves the entry, and any gateway's JobReconciler finishes the admission. Task
 * ids are deterministic, so a retried admission cannot double the work; admitting a job id whose record exists (a
 * batch item re-admitted after its gateway died) republishes its tasks only while some are not yet queued.
 */
export class JobAdmission {
  readonly jobs: JobStore;

  constructor(
    private readonly conn: FarmConnection,
    private readonly store: ObjectStore,
    private readonly gate: AdmissionGate,
    private readonly rates: ServiceRates,
    /** Admissions under way, for the reconciler to finish when their gateway dies. */
    private readonly pending: PendingAdmissions,
    /** Per-tenant limits on images not yet finished; none on an open farm. */
    private readonly quota?: TenantQuota,
  ) {
    this.jobs = new JobStore(conn.jobs);
  }

  newJobId(): string {
    return randomUUID();
  }

  /** Admits the job; returns its QUEUED record and its ETA in seconds. */
  async admit(jobId: string, a: Admission): Promise<{ job: Job; etaSeconds: number }> {
    const release = this.quota?.reserve(a.tenant ?? "", jobId, a.params.numImages);
    try {
      return await this.gate.admit(this.work(a), async (etaSeconds) => ({ job: await this.enqueue(jobId, a), etaSeconds }));
    } catch (err) {
      release?.();
      throw err;
    }
  }

  /**
   * The job's tasks and worker-seconds per pool: images × stages, each stage at its measured rate and steps. A DDIM
   * inversion costs the decoder about one image's decoding, once per source and job (its frames share it).
   */
  private work(a: Admission): JobWork {
    const work: JobWork = new Map();
    const { numImages, sampling } = a.params;
    const inversions = a.manipulation?.invertSources ? (a.manipulation.sourceB ? 2 : 1) : 0;
    for (const stage of a.route) {
      const steps = stage === Stage.PRIOR ? sampling.priorSteps : stage === Stage.DECODER ? sampling.decoderSteps : 0;
      const runs = stage === Stage.DECODER ? numImages + inversions : numImages;
      const pool = stagePool(stage);
      const w = work.get(pool) ?? { tasks: 0, seconds: 0 };
      work.set(pool, { tasks: w.tasks + numImages, seconds: w.seconds + runs * this.rates.taskSeconds(stage, steps) });
    }
    return work;
  }

  private async enqueue(jobId: string, a: Admission): Promise<Job> {
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
    if (a.manipulation) {
      const { sourceB, invertSources, fromPrompt, strength } = a.manipulation;
      Object.assign(params, { invertSources, fromPrompt: fromPrompt ?? "", strength: strength ?? 0 });
      if (sourceB) {
        params.sourceBKey = inputKey(jobId, "source-b");
        await this.store.put(params.sourceBKey, sourceB, "application/octet-stream");
      }
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
      tenant: a.tenant ?? "",
    });
    const template = create(StageTaskSchema, {
      jobId,
      index: 0,
      seed: a.params.seed,
      route: a.route,
      params,
      enqueuedAtMs: now,
      lane: a.lane ?? Lane.INTERACTIVE,
    });
    // Written before the record: a gateway that dies from here on leaves an entry that a reconciler finishes.
    await this.pending.add(template);
    try {
      await this.jobs.create(job);
    } catch (err) {
      const existing = await this.jobs.get(jobId);
      if (!existing) throw err;
      // A job whose tasks were all queued, or that ended, needs nothing more; one still short of tasks (QUEUED, or
      // RUNNING with the images published so far) gets them all published again, which the stream deduplicates.
      if (isTerminal(existing) || existing.queuedAtMs > 0n) {
        await this.pending.remove(jobId);
        return existing;
      }
    }
    faultPoint("admission-after-record");
    await publishTasks(this.conn, template);
    faultPoint("admission-after-publish");
    const stored = await markQueued(this.jobs, jobId);
    await this.pending.remove(jobId);
    // The record as admission left it: a fast worker may already have moved the stored one on to RUNNING, which the
    // stage events that follow the Queued event report.
    job.queuedAtMs = stored?.queuedAtMs ?? BigInt(Date.now());
    return job;
  }
}

/**
 * Publishes one first-stage task per image of the job from its index-0 task. Message ids are deterministic
 * (`<jobId>.<index>.<stage>`), so publishing again within the stream's 10-minute duplicate window adds nothing.
 */
export async function publishTasks(conn: FarmConnection, template: StageTask): Promise<void> {
  const first = template.route[0]!;
  for (let index = 0; index < (template.params?.numImages ?? 0); index++) {
    const task = create(StageTaskSchema, {
      ...template,
      index,
      // An interpolation's frames share one starting noise; other jobs' image i uses seed + i.
      seed: template.params?.kind === JobKind.INTERPOLATE ? template.seed : BigInt.asUintN(64, template.seed + BigInt(index)),
      enqueuedAtMs: BigInt(Date.now()),
    });
    await conn.js.publish(taskSubject(stagePool(first), task.lane), toBinary(StageTaskSchema, task), {
      msgID: `${template.jobId}.${index}.${stageName(first)}`,
    });
  }
}

/** Sets Job.queued_at_ms once every task of the job is queued (the first time only). */
export async function markQueued(jobs: JobStore, jobId: string): Promise<Job | undefined> {
  const queuedAtMs = BigInt(Date.now());
  return jobs.update(jobId, (j) => {
    if (j.queuedAtMs > 0n) return undefined;
    j.queuedAtMs = queuedAtMs;
    return j;
  });
}
