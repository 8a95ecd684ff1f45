import { create, fromBinary, toBinary, JobSchema, JobState, type Job } from "@unclip/protocol";
import type { KV } from "@nats-io/kv";
import { updateRecord } from "./kv-records.js";

const JOB_CODEC = { decode: (b: Uint8Array) => fromBinary(JobSchema, b), encode: (j: Job) => toBinary(JobSchema, j) };

export const TERMINAL_STATES: ReadonlySet<JobState> = new Set([JobState.SUCCEEDED, JobState.FAILED, JobState.CANCELLED]);

export function isTerminal(job: Job): boolean {
  return TERMINAL_STATES.has(job.state);
}

/** Job records in the JetStream KV bucket, keyed by job id, stored as farm.v1.Job protobuf. */
export class JobStore {
  constructor(private readonly kv: KV) {}

  async create(job: Job): Promise<void> {
    await this.kv.create(job.jobId, toBinary(JobSchema, job));
  }

  async get(jobId: string): Promise<Job | undefined> {
    const entry = await this.kv.get(jobId);
    if (!entry || entry.operation !== "PUT" || entry.value.length === 0) return undefined;
    return fromBinary(JobSchema, entry.value);
  }

  /**
   * Read-modify-write with optimistic concurrency: several workers finish images of one job at once, so the
   * update retries on a revision conflict. `change` returns undefined to leave the record as it is.
   */
  async update(jobId: string, change: (job: Job) => Job | undefined): Promise<Job | undefined> {
    return updateRecord(this.kv, jobId, JOB_CODEC, (job) => {
      const next = change(job);
      if (next) next.updatedAtMs = BigInt(Date.now());
      return next;
    });
  }

  /** Calls back on every change of the job's record until the returned stop function runs. */
  async watch(jobId: string, onChange: (job: Job) => void): Promise<() => void> {
    const iter = await this.kv.watch({ key: jobId });
    void (async () => {
      for await (const entry of iter) {
        if (entry.operation === "PUT" && entry.value.length > 0) onChange(fromBinary(JobSchema, entry.value));
      }
    })();
    return () => iter.stop();
  }
}
