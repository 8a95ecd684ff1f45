import { JobState, Stage, type Job } from "@unclip/protocol";
import { WINDOW_KINDS, type FaultKind, type Injection } from "./fault-log.js";
import type { JobRun } from "./job-client.js";

/** sha256 of each final image of each job, by spec index then image index. */
export type ImageHashes = ReadonlyMap<number, ReadonlyMap<number, string>>;

export type Outcome = "succeeded" | "failed-permanent" | "failed" | "lost";

/** A task started again (attempt > 1), and what explains it. */
export interface TaskRetry {
  readonly stage: string;
  readonly image: number;
  readonly attempt: number;
  readonly worker: string;
  readonly at: number;
  /** The worker of the attempt before and when it started, when the client saw it start. */
  readonly previousWorker?: string;
  readonly previousAt?: number;
  /** The fault that explains it: the previous worker's death, or an outage in between. */
  readonly cause?: Injection;
}

export interface JobVerdict {
  readonly index: number;
  readonly jobId?: string;
  readonly outcome: Outcome;
  readonly latencyMs: number;
  readonly error?: string;
  readonly retries: readonly TaskRetry[];
  /** Streams the client had to open again. */
  readonly clientRetries: number;
  /** Extra `image` events for one index in one stream, plus extra images for one index in the job record. */
  readonly duplicates: number;
  /** Where they were, e.g. "image 0: 2 image events in stream 1". */
  readonly duplicateNotes: readonly string[];
  /** Images that differ from (or are missing compared with) the fault-free run. */
  readonly mismatches: number;
  /** Retries no fault explains: a task taken from a worker that was alive and making progress. */
  readonly suspicious: readonly TaskRetry[];
}

export interface FaultRow {
  readonly kind: FaultKind | "all jobs";
  readonly injections: number;
  readonly jobsAffected: number;
  readonly taskRetries: number;
  readonly clientRetries: number;
  readonly succeeded: number;
  readonly failedPermanent: number;
  readonly failed: number;
  readonly lost: number;
  readonly duplicates: number;
  readonly mismatches: number;
  readonly suspicious: number;
  readonly maxLatencyS: number;
}

const POOL_OF_STAGE: Partial<Record<Stage, string>> = {
  [Stage.PRIOR]: "prior",
  [Stage.IMAGE_ENCODE]: "prior",
  [Stage.DECODER]: "decoder",
  [Stage.UPSCALE_256]: "upscale",
  [Stage.UPSCALE_1024]: "upscale",
};

/** A process's exit counts for a retry when it happened after the previous attempt started (clocks: one host). */
const SLACK_MS = 500;

const overlaps = (a0: number, a1: number, b0: number, b1: number | undefined) => a0 <= (b1 ?? Infinity) && b0 <= a1;

/**
 * An outage still causes failures this long after the server is back: clients reconnect (NATS waits 2 s between
 * tries), JetStream recovers its streams, and a call made during the outage fails only at its deadline (NATS
 * requests 5 s, S3 calls UNCLIP_S3_TIMEOUT_MS, 10 s).
 */
export const OUTAGE_AFTERMATH_MS = 10_000;

const outageEnd = (f: Injection) => (f.until === undefined ? undefined : f.until + OUTAGE_AFTERMATH_MS);

/** Explains each attempt > 1 of a task by a process exit or an outage between it and the attempt before. */
export function taskRetries(run: JobRun, faults: readonly Injection[]): TaskRetry[] {
  const starts = run.streams
    .flatMap((s) => s.events)
    .flatMap(({ event }) => (event.event.case === "stageStarted" ? [{ ...event.event.value, at: Number(event.atMs) }] : []));
  const retries: TaskRetry[] = [];
  for (const start of starts) {
    if (start.attempt <= 1) continue;
    const previous = starts.find((s) => s.stage === start.stage && s.index === start.index && s.attempt === start.attempt - 1);
    const from = (previous?.at ?? run.submittedAt) - SLACK_MS;
    const pool = POOL_OF_STAGE[start.stage as Stage] ?? "";
    const died = faults.find(
      (f) =>
        !WINDOW_KINDS.includes(f.kind) &&
        (previous ? f.target === previous.worker : f.target.startsWith(`${pool}-worker-`)) &&
        f.at >= from &&
        f.at <= start.at,
    );
    const outage = faults.find((f) => WINDOW_KINDS.includes(f.kind) && overlaps(from, start.at, f.at, outageEnd(f)));
    retries.push({
      stage: Stage[start.stage] ?? String(start.stage),
      image: start.index,
      attempt: start.attempt,
      worker: start.worker,
      at: start.at,
      previousWorker: previous?.worker,
      previousAt: previous?.at,
      cause: died ?? outage,
    });
  }
  return retries;
}

function duplicates(run: JobRun): string[] {
  const notes: string[] = [];
  const count = (indices: number[], what: string) => {
    const perIndex = new Map<number, number>();
    for (const i of indices) perIndex.set(i, (perIndex.get(i) ?? 0) + 1);
    for (const [i, n] of perIndex) if (n > 1) notes.push(`image ${String(i)}: ${String(n)} ${what}`);
  };
  run.streams.forEach((stream, s) =>
    count(
      stream.events.flatMap(({ event }) => (event.event.case === "image" ? [event.event.value.index] : [])),
      `image events in stream ${String(s + 1)}`,
    ),
  );
  count(
    (run.final?.images ?? []).map((image) => image.index),
    "images in the job record",
  );
  return notes;
}

const extra = (note: string) => Number(/: (\d+) /.exec(note)![1]) - 1;

/**
 * The task a job failed on when it ran out of deliveries: "the decoder stage of image 0 was delivered 8 times without
 * finishing" (dead letter) or "the decoder stage (image 0) failed 8 times; last error: …" (last retry failed).
 */
const OUT_OF_DELIVERIES = [
  /the ([a-z0-9-]+) stage of image (\d+) was delivered \d+ times/,
  /the ([a-z0-9-]+) stage \(image (\d+)\) failed \d+ times/,
];

function outcome(final: Job | undefined, retries: readonly TaskRetry[]): Outcome {
  if (!final) return "lost";
  if (final.state === JobState.SUCCEEDED) return "succeeded";
  // Permanent: the faults used up the task's deliveries (UNCLIP_MAX_DELIVER) - every retry of it that the client
  // saw has a fault that explains it.
  const failedTask = final.state === JobState.FAILED ? OUT_OF_DELIVERIES.map((re) => re.exec(final.error)).find(Boolean) : undefined;
  if (!failedTask) return "failed";
  const stage = failedTask[1]!.toUpperCase().replaceAll("-", "_");
  const ofTask = retries.filter((r) => r.stage === stage && r.image === Number(failedTask[2]));
  return ofTask.length > 0 && ofTask.every((r) => r.cause) ? "failed-permanent" : "failed";
}

export function judgeJob(run: JobRun, faults: readonly Injection[], baseline: ImageHashes, hashes: ImageHashes): JobVerdict {
  const retries = taskRetries(run, faults);
  const result = outcome(run.final, retries);
  const duplicateNotes = duplicates(run);
  let mismatches = 0;
  if (result === "succeeded") {
    const expected = baseline.get(run.spec.index);
    const got = hashes.get(run.spec.index);
    for (let i = 0; i < run.spec.numImages; i++) if (!expected?.get(i) || expected.get(i) !== got?.get(i)) mismatches++;
  }
  return {
    index: run.spec.index,
    jobId: run.jobId,
    outcome: result,
    latencyMs: (run.endedAt ?? Date.now()) - run.submittedAt,
    error: run.final?.error || (run.streams.length === 0 ? "never submitted: the phase limit passed first" : run.streams.at(-1)?.error),
    retries,
    clientRetries: Math.max(0, run.streams.length - 1),
    duplicates: duplicateNotes.reduce((n, note) => n + extra(note), 0),
    duplicateNotes,
    mismatches,
    suspicious: retries.filter((r) => !r.cause),
  };
}

/** The faults that touched a job: the causes of its retries, and outages or gateway deaths while it ran. */
function faultsOf(run: JobRun, verdict: JobVerdict, faults: readonly Injection[]): Set<Injection> {
  const touched = new Set<Injection>();
  for (const r of verdict.retries) if (r.cause) touched.add(r.cause);
  const end = run.endedAt ?? Date.now();
  for (const f of faults) {
    if (
      WINDOW_KINDS.includes(f.kind)
        ? overlaps(run.submittedAt, end, f.at, outageEnd(f))
        : f.target === "gateway" && overlaps(run.submittedAt, end, f.at, f.until ?? f.at)
    ) {
      touched.add(f);
    }
  }
  return touched;
}

function row(kind: FaultRow["kind"], injections: number, verdicts: readonly JobVerdict[], retriesOf: (v: JobVerdict) => number): FaultRow {
  const count = (o: Outcome) => verdicts.filter((v) => v.outcome === o).length;
  const sum = (f: (v: JobVerdict) => number) => verdicts.reduce((n, v) => n + f(v), 0);
  return {
    kind,
    injections,
    jobsAffected: verdicts.length,
    taskRetries: sum(retriesOf),
    clientRetries: sum((v) => v.clientRetries),
    succeeded: count("succeeded"),
    failedPermanent: count("failed-permanent"),
    failed: count("failed"),
    lost: count("lost"),
    duplicates: sum((v) => v.duplicates),
    mismatches: sum((v) => v.mismatches),
    suspicious: sum((v) => v.suspicious.length),
    maxLatencyS: Math.round(Math.max(0, ...verdicts.map((v) => v.latencyMs)) / 100) / 10,
  };
}

/** One row per kind of fault (over the jobs it touched), then one over every job. */
export function faultTable(runs: readonly JobRun[], verdicts: readonly JobVerdict[], faults: readonly Injection[]): FaultRow[] {
  const touched = runs.map((run, i) => faultsOf(run, verdicts[i]!, faults));
  const kinds = [...new Set(faults.map((f) => f.kind))];
  const rows = kinds.map((kind) => {
    const affected = verdicts.filter((_, i) => [...touched[i]!].some((f) => f.kind === kind));
    return row(kind, faults.filter((f) => f.kind === kind).length, affected, (v) => v.retries.filter((r) => r.cause?.kind === kind).length);
  });
  return [...rows, row("all jobs", faults.length, verdicts, (v) => v.retries.length)];
}

/** What breaks the suite's promises, and processes that crashed on their own; empty when the farm kept them all. */
export function violations(verdicts: readonly JobVerdict[], faults: readonly Injection[] = []): string[] {
  const out: string[] = faults
    .filter((f) => f.kind === "unexplained-exit")
    .map((f) => `${f.target} (pid ${String(f.pid)}) crashed: ${f.detail ?? "it exited on its own"} (see its log)`);
  for (const v of verdicts) {
    const job = `job ${String(v.index)} (${v.jobId ?? "no id"})`;
    if (v.outcome === "lost") out.push(`${job} was lost: no terminal state (${v.error ?? "no error"})`);
    if (v.outcome === "failed") out.push(`${job} failed without a permanent fault: ${v.error ?? ""}`);
    if (v.duplicates > 0) out.push(`${job} has duplicates: ${v.duplicateNotes.join("; ")}`);
    if (v.mismatches > 0) out.push(`${job} has ${String(v.mismatches)} image(s) that differ from the fault-free run`);
    for (const r of v.suspicious) {
      out.push(
        `${job}: ${r.stage} of image ${String(r.image)} started again (attempt ${String(r.attempt)} on ${r.worker}) ` +
          `while ${r.previousWorker ?? "its previous worker"} was alive and no outage was on`,
      );
    }
  }
  return out;
}
