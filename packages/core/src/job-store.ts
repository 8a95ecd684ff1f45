import { create, fromBinary, toBinary, JobSchema, JobState, type Job } from "@unclip/protocol";
import type { KV } from "@nats-io/kv";
import type { NatsConnection } from "@nats-io/transport-node";
import { updateRecord } from "./kv-records.js";
import { JOB_BUCKET } from "./nats.js";

const JOB_CODEC = { decode: (b: Uint8Array) => fromBinary(JobSchema, b), encode: (j: Job) => toBinary(JobSchema, j) };

const KV_OPERATION = "KV-Operation";

export const TERMINAL_STATES: ReadonlySet<JobState> = new Set([JobState.SUCCEEDED, JobState.FAILED, JobState.CANCELLED]);

export function isTerminal(job: Job): boolean {
  return TERMINAL_STATES.has(job.state);
}

/** Job records in the JetStream KV bucket, keyed by job id, stored as farm.v1.Job protobuf. */
export class JobStore {
  private reconnects: Set<(err?: Error) => void> | undefined;

  constructor(private readonly kv: KV) {}

  /**
   * What runs on each reconnect of `nc` (one status listener for every watch of this store); each gets an error
   * instead if the listener fails. The loop ends when the connection closes: the watches learn of that from their
   * subscriptions.
   */
  private onReconnect(nc: NatsConnection): Set<(err?: Error) => void> {
    if (!this.reconnects) {
      const callbacks = (this.reconnects = new Set());
      (async () => {
        for await (const s of nc.status()) if (s.type === "reconnect") for (const f of callbacks) f();
      })().catch((err: unknown) => {
        this.reconnects = undefined;
        for (const f of callbacks) f(new Error(`stopped following reconnects: ${String(err)}`));
      });
    }
    return this.reconnects;
  }

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

  /**
   * Calls back with the job's record now and on every change after, until the returned stop function runs. When the
   * watch can no longer follow the record (the connection closed), `onEnd` gets the reason, so no caller waits on a
   * dead watch.
   *
   * A plain subscription to the record's subject, not a KV watch: a KV watch is an ordered consumer that the server
   * keeps for five minutes after its client stops, one per followed stream. Updates missed while the connection
   * was down are caught up by reading the record again on every reconnect; its latest state is all a follower needs.
   */
  async watch(nc: NatsConnection, jobId: string, onChange: (job: Job) => void, onEnd: (err: Error) => void): Promise<() => void> {
    let stopped = false;
    const ended = (err: unknown) => {
      if (stopped) return;
      stopped = true;
      stop();
      onEnd(err instanceof Error ? err : new Error(String(err)));
    };
    const refresh = async () => {
      const job = await this.get(jobId);
      if (job && !stopped) onChange(job);
    };
    const sub = nc.subscribe(`$KV.${JOB_BUCKET}.${jobId}`, {
      callback: (err, msg) => {
        if (err) return ended(err);
        // Deletes and purges carry a KV-Operation header and no record.
        if (msg.data.length === 0 || msg.headers?.get(KV_OPERATION)) return;
        try {
          onChange(fromBinary(JobSchema, msg.data));
        } catch (e) {
          ended(e);
        }
      },
    });
    const catchUp = (err?: Error) => (err ? ended(err) : void refresh().catch(ended));
    const stop = () => {
      stopped = true;
      sub.unsubscribe();
      this.onReconnect(nc).delete(catchUp);
    };
    this.onReconnect(nc).add(catchUp);
    void sub.closed.then(() => ended(new Error(`the watch of job ${jobId} ended (connection closed)`)), ended);
    try {
      await nc.flush();
      await refresh();
    } catch (err) {
      stop();
      throw err;
    }
    return stop;
  }
}
