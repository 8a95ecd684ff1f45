import type { KV } from "@nats-io/kv";
import { failJob, isRevisionConflict, isTerminal, openBucket, type FarmConnection, type JobStore, type Logger } from "@unclip/core";
import { fromBinary, toBinary, StageTaskSchema, type StageTask } from "@unclip/protocol";
import { markQueued, publishTasks } from "./job-admission.js";
import { SerialPasses } from "./serial-passes.js";

export const ADMISSION_BUCKET = "farm_admissions";

/**
 * Admissions under way, in the KV bucket farm_admissions: one entry per job, written before its record and removed
 * once every task is queued, holding the job's first-stage task with index 0 (everything needed to publish the
 * job's tasks again). The bucket holds only unfinished admissions, so scanning it stays cheap however many jobs the
 * job bucket keeps. Entries are removed with a subject purge, which leaves no delete marker behind to scan.
 */
export class PendingAdmissions {
  private constructor(
    private readonly kv: KV,
    private readonly conn: FarmConnection,
  ) {}

  static async open(conn: FarmConnection, ttlSeconds: number): Promise<PendingAdmissions> {
    return new PendingAdmissions(
      await openBucket(conn.nc, conn.jsm, ADMISSION_BUCKET, { ttlSeconds, replicas: conn.replicas, enforce: true }),
      conn,
    );
  }

  /** Records the admission of `template.jobId` (again, for a re-admission). */
  async add(template: StageTask): Promise<void> {
    await this.kv.put(template.jobId, toBinary(StageTaskSchema, template));
  }

  async remove(jobId: string): Promise<void> {
    await this.conn.jsm.streams.purge(`KV_${ADMISSION_BUCKET}`, { filter: `$KV.${ADMISSION_BUCKET}.${jobId}`, keep: 0 });
  }

  /** Admissions whose entry was last written (by their gateway or a reconciler's claim) at least `idleMs` ago. */
  async stale(idleMs: number): Promise<{ template: StageTask; revision: number }[]> {
    const out: { template: StageTask; revision: number }[] = [];
    const now = Date.now();
    for await (const key of await this.kv.keys()) {
      const entry = await this.kv.get(key);
      if (!entry || entry.operation !== "PUT" || now - entry.created.getTime() < idleMs) continue;
      out.push({ template: fromBinary(StageTaskSchema, entry.value), revision: entry.revision });
    }
    return out;
  }

  /**
   * Claims a stale admission for this gateway by rewriting its entry at the revision it was read at: of several
   * gateways, exactly one wins, and the rewrite starts a new idle period, so no other reconciler takes it up while
   * the winner works on it. False when another gateway (or the admission itself) got there first.
   */
  async claim(template: StageTask, revision: number): Promise<boolean> {
    try {
      await this.kv.update(template.jobId, toBinary(StageTaskSchema, template), revision);
      return true;
    } catch (err) {
      if (isRevisionConflict(err)) return false;
      throw err;
    }
  }
}

export interface JobReconcilerOptions {
  /** How often a pass runs (default 5 s). */
  intervalMs?: number;
  /**
   * An admission not finished this long after its entry was written is an orphan (default 15 s). A healthy one takes
   * well under a second; one that is merely slow and gets published again meanwhile loses nothing, since the task
   * stream drops the duplicates and the claim lets one gateway act.
   */
  orphanAfterMs?: number;
  /**
   * An orphan admitted longer ago than this is failed instead of republished (default 8 min): its first publish
   * may be older than the task stream's 10-minute duplicate window, so a republish could run its images twice.
   */
  republishForMs?: number;
}

/**
 * Finishes admissions that their gateway left half done (it died, or NATS failed, between writing the QUEUED
 * record and publishing every task): such a job would stay QUEUED, or RUNNING short of images, for ever. Every
 * gateway runs one; each orphan is claimed by exactly one of them (PendingAdmissions.claim) and its tasks are
 * published again under their deterministic message ids, which the task stream deduplicates, or the job is failed
 * with a reason when that is no longer safe. An orphan is handled 15 to 20 s after its gateway stopped.
 */
export class JobReconciler {
  private readonly passes = new SerialPasses(
    () => this.reconcile(),
    (err) => this.log.warn({ err }, "could not check for unfinished admissions: trying again on the next pass"),
  );
  private readonly intervalMs: number;
  private readonly orphanAfterMs: number;
  private readonly republishForMs: number;

  constructor(
    private readonly conn: FarmConnection,
    private readonly jobs: JobStore,
    private readonly pending: PendingAdmissions,
    private readonly log: Logger,
    opts: JobReconcilerOptions = {},
  ) {
    this.intervalMs = opts.intervalMs ?? 5_000;
    this.orphanAfterMs = opts.orphanAfterMs ?? 15_000;
    this.republishForMs = opts.republishForMs ?? 8 * 60_000;
  }

  start(): void {
    this.passes.start(this.intervalMs, { now: true });
  }

  stop(): Promise<void> {
    return this.passes.stop();
  }

  /** One pass over the stale admissions (never two at once); never rejects. */
  pass(): Promise<void> {
    return this.passes.run();
  }

  private async reconcile(): Promise<void> {
    for (const { template, revision } of await this.pending.stale(this.orphanAfterMs)) {
      if (!(await this.pending.claim(template, revision))) continue;
      await this.repair(template);
    }
  }

  private async repair(template: StageTask): Promise<void> {
    const jobId = template.jobId;
    const job = await this.jobs.get(jobId);
    // No record: the gateway died before writing it, so no client was told of the job. A terminal or queued job
    // needs nothing either (its admission finished, or it was cancelled or failed meanwhile).
    if (!job || isTerminal(job) || job.queuedAtMs > 0n) {
      await this.pending.remove(jobId);
      return;
    }
    const ageMs = Date.now() - Number(template.params?.createdAtMs ?? 0n);
    if (ageMs > this.republishForMs) {
      const reason = `admission did not finish: its gateway stopped before queuing every task, and ${Math.round(ageMs / 1000)} s later the tasks can no longer be queued again safely; submit the job again`;
      await failJob(this.jobs, this.conn.nc, jobId, reason);
      this.log.warn({ jobId, ageMs }, "unfinished admission failed");
    } else {
      await publishTasks(this.conn, template);
      await markQueued(this.jobs, jobId);
      this.log.warn({ jobId, ageMs, images: template.params?.numImages }, "unfinished admission: tasks published again");
    }
    await this.pending.remove(jobId);
  }
}
