import { status, type ServiceError } from "@grpc/grpc-js";
import type { UnclipClient } from "@unclip/cli";
import { JobState, type Job, type JobEvent } from "@unclip/protocol";
import { jobRequest, type JobInputs, type JobSpec } from "./job-specs.js";

/** One call that followed the job: the events it got (with when they arrived) and how it ended. */
export interface StreamRecord {
  readonly openedAt: number;
  readonly events: { readonly event: JobEvent; readonly at: number }[];
  endedAt?: number;
  /** Why the stream ended without a terminal event (gRPC status or "idle"). */
  error?: string;
}

/** Everything the suite's client saw of one job. */
export interface JobRun {
  readonly spec: JobSpec;
  readonly requestId: string;
  readonly submittedAt: number;
  jobId?: string;
  readonly streams: StreamRecord[];
  /** The job's terminal record, from its terminal event (or GetJob once the deadline passed). */
  final?: Job;
  endedAt?: number;
}

export interface RunJobOptions {
  /** Idempotency key: the same on every retry, so a retry follows the job instead of starting another. */
  readonly requestId: string;
  /** The client gives up at this time (ms since the epoch); the job then counts as lost unless it ended. */
  readonly deadline: number;
  /** A stream without events for this long is cancelled and followed again (a hung gateway). */
  readonly idleMs: number;
}

/** Codes a retry cannot fix: a bug of the suite, not a fault it injected. */
const PERMANENT = new Set([status.INVALID_ARGUMENT, status.ALREADY_EXISTS, status.FAILED_PRECONDITION, status.PERMISSION_DENIED]);

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

function open(client: UnclipClient, spec: JobSpec, inputs: JobInputs, requestId: string) {
  const r = jobRequest(spec, inputs, requestId);
  switch (r.kind) {
    case "generate":
      return client.generate(r.request);
    case "variations":
      return client.createVariations(r.request);
    case "edit":
      return client.editImage(r.request);
  }
}

function terminalJob(event: JobEvent): Job | undefined {
  const c = event.event.case;
  return c === "completed" || c === "failed" || c === "cancelled" ? event.event.value : undefined;
}

/**
 * Runs one job the way a careful client does: when its stream breaks (gateway killed, NATS restarting) or goes
 * silent, it calls again with the same request_id after a short backoff, until the job ends or the deadline passes.
 */
export async function runJob(client: UnclipClient, spec: JobSpec, inputs: JobInputs, opts: RunJobOptions): Promise<JobRun> {
  const run: JobRun = { spec, requestId: opts.requestId, submittedAt: Date.now(), streams: [] };
  for (let attempt = 0; !run.final && Date.now() < opts.deadline; attempt++) {
    if (attempt > 0) await sleep(Math.min(250 * 2 ** (attempt - 1), 3_000));
    const record: StreamRecord = { openedAt: Date.now(), events: [] };
    run.streams.push(record);
    const stream = open(client, spec, inputs, opts.requestId);
    const iterator = stream[Symbol.asyncIterator]();
    try {
      for (;;) {
        let timer: NodeJS.Timeout | undefined;
        const idle = new Promise<"idle">((resolve) => {
          timer = setTimeout(() => resolve("idle"), Math.min(opts.idleMs, Math.max(0, opts.deadline - Date.now())));
        });
        const next = await Promise.race([iterator.next(), idle]).finally(() => clearTimeout(timer));
        if (next === "idle") {
          record.error = "idle";
          stream.cancel();
          break;
        }
        if (next.done) {
          record.error ??= "ended without a terminal event";
          break;
        }
        record.events.push({ event: next.value, at: Date.now() });
        run.jobId ??= next.value.jobId;
        const job = terminalJob(next.value);
        if (job) {
          run.final = job;
          break;
        }
      }
    } catch (err) {
      const e = err as ServiceError;
      record.error = `${status[e.code] ?? "ERROR"}: ${e.details ?? e.message}`;
      if (PERMANENT.has(e.code)) break;
      const retryAfter = Number(e.metadata?.get("retry-after-ms")[0] ?? 0);
      if (retryAfter > 0) await sleep(Math.min(retryAfter, Math.max(0, opts.deadline - Date.now())));
    }
    record.endedAt = Date.now();
  }
  if (!run.final && run.jobId) {
    // The client gave up following: the record still says whether the job ended.
    const job = await client.getJob(run.jobId, { timeoutMs: 5_000 }).catch(() => undefined);
    if (job && job.state !== JobState.QUEUED && job.state !== JobState.RUNNING) run.final = job;
  }
  run.endedAt = Date.now();
  return run;
}
