import { FarmError, GrpcStatus, isTerminal, toFarmError, type JobStore, type Logger, type ObjectStore } from "@unclip/core";
import {
  create,
  toJsonString,
  BatchItemResultSchema,
  BatchState,
  JobState,
  Lane,
  type BatchItem,
  type BatchItemResult,
  type BatchRecord,
  type Job,
} from "@unclip/protocol";
import type { Counter, Gauge } from "prom-client";
import { resultsKey, type BatchItems } from "./batch-items.js";
import type { BatchStore } from "./batch-store.js";
import type { JobAdmission } from "./job-admission.js";
import { prepareItem } from "./job-requests.js";
import { sha256 } from "./request-ledger.js";
import { SerialPasses } from "./serial-passes.js";

export interface BatchRunnerOptions {
  /** This gateway's name, written into the leases it holds. */
  owner: string;
  /** Most items of one batch submitted and not yet ended (UNCLIP_BATCH_IN_FLIGHT). */
  maxInFlight: number;
  /** How long a lease holds without renewal; another gateway takes the batch over after it runs out. */
  leaseMs: number;
  /** How often the runner steps its batches. */
  tickMs: number;
  /** What the CancelBatch path and the runner use to stop a submitted item's job. */
  cancelJob: (jobId: string, reason: string) => Promise<unknown>;
}

export interface BatchMetrics {
  items: Counter<"outcome">;
  batches: Counter<"state">;
  /** Batches running, as this gateway last counted them. */
  running: Gauge;
}

/** An item's job id: the same for every gateway and every attempt, so a re-admission cannot double the work. */
export function itemJobId(batchId: string, index: number): string {
  const h = sha256(`batch/${batchId}/${index}`);
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20, 32)}`;
}

/**
 * Drives running batches. Every gateway runs one; a batch is driven by the gateway that holds its lease (renewed
 * each tick, taken over when it runs out), so a gateway that dies loses nothing: its batches carry on elsewhere.
 *
 * Each step settles the batch's in-flight items whose jobs ended, then submits more items while fewer than
 * maxInFlight are in flight. The bound keeps the task stream and memory small for a 10,000-item batch and lets
 * several batches share the batch lane: each one holds at most maxInFlight places in it. An item is recorded in
 * flight before its job is admitted; an in-flight item without a job (the gateway died in between, or admission
 * said RESOURCE_EXHAUSTED) is admitted again on a later step, under the same job id.
 */
export class BatchRunner {
  private readonly passes = new SerialPasses(
    () => this.pass(),
    (err) => this.log.error({ err }, "batch pass failed: it runs again on the next tick"),
  );

  constructor(
    private readonly batches: BatchStore,
    private readonly items: BatchItems,
    private readonly admission: JobAdmission,
    private readonly jobs: JobStore,
    private readonly store: ObjectStore,
    private readonly opts: BatchRunnerOptions,
    private readonly log: Logger,
    private readonly metrics: BatchMetrics,
  ) {}

  start(): void {
    this.passes.start(this.opts.tickMs);
  }

  stop(): Promise<void> {
    return this.passes.stop();
  }

  /** One pass over the running batches (never two at once); never rejects. */
  tick(): Promise<void> {
    return this.passes.run();
  }

  private async pass(): Promise<void> {
    let ids: string[];
    try {
      ids = await this.batches.running();
      this.metrics.running.set(ids.length);
    } catch (err) {
      this.log.warn({ err }, "could not list the running batches");
      return;
    }
    for (const batchId of ids) {
      try {
        const record = await this.lease(batchId);
        if (record) await this.step(record);
      } catch (err) {
        this.log.warn({ err, batchId }, "batch step failed: it is retried on the next tick");
      }
    }
  }

  private async lease(batchId: string): Promise<BatchRecord | undefined> {
    const { owner, leaseMs } = this.opts;
    const record = await this.batches.update(batchId, (r) => {
      const now = Date.now();
      if (r.batch!.state !== BatchState.RUNNING || (r.leaseOwner !== owner && Number(r.leaseUntilMs) > now)) return undefined;
      if (r.leaseOwner !== owner) this.log.info({ batchId, from: r.leaseOwner || undefined }, "taking over the batch");
      r.leaseOwner = owner;
      r.leaseUntilMs = BigInt(now + leaseMs);
      return r;
    });
    return record?.leaseOwner === owner && record.batch!.state === BatchState.RUNNING ? record : undefined;
  }

  private async step(record: BatchRecord): Promise<void> {
    const batchId = record.batch!.batchId;
    const items = await this.items.load(record.itemsKey);
    record = await this.settle(batchId, record, items);
    if (record.cancelRequested) {
      if (record.inFlight.length === 0) await this.finish(batchId, items, BatchState.CANCELLED);
      return;
    }
    record = await this.feed(batchId, record, items);
    if (record.nextIndex >= items.length && record.inFlight.length === 0) await this.finish(batchId, items, BatchState.COMPLETED);
  }

  /** Records the in-flight items whose jobs ended; re-admits those without a job; cancels them on CancelBatch. */
  private async settle(batchId: string, record: BatchRecord, items: BatchItem[]): Promise<BatchRecord> {
    const ended = new Map<number, BatchItemResult>();
    for (const index of record.inFlight) {
      const jobId = itemJobId(batchId, index);
      const job = await this.jobs.get(jobId);
      if (job && isTerminal(job)) ended.set(index, resultOf(items[index]!, job));
      else if (record.cancelRequested) {
        if (job) await this.opts.cancelJob(jobId, "the batch was cancelled");
        else
          ended.set(
            index,
            create(BatchItemResultSchema, {
              customId: items[index]!.customId,
              state: JobState.CANCELLED,
              error: "the batch was cancelled",
            }),
          );
      } else if (!job) {
        // No record: the gateway died before admitting the item. A record whose tasks were not all queued is the
        // reconciler's to finish (job-reconciler.ts), as for any job.
        const outcome = await this.submit(record, index, items[index]!);
        if (outcome instanceof Error) ended.set(index, failed(items[index]!, outcome));
      }
    }
    if (ended.size === 0) return record;
    for (const [index, result] of ended) await this.batches.putItem(batchId, index, result);
    for (const result of ended.values()) this.metrics.items.inc({ outcome: outcomeOf(result.state) });
    return (await this.batches.update(batchId, (r) => {
      // Another gateway took the batch over meanwhile: it settles these itself; counting here would count twice.
      if (r.leaseOwner !== this.opts.owner) return undefined;
      for (const index of r.inFlight) if (ended.has(index)) count(r, ended.get(index)!.state);
      r.inFlight = r.inFlight.filter((i) => !ended.has(i));
      markRate(r);
      return r;
    }))!;
  }

  /** Submits the next items while fewer than maxInFlight are in flight; stops at the admission limits. */
  private async feed(batchId: string, record: BatchRecord, items: BatchItem[]): Promise<BatchRecord> {
    while (record.inFlight.length < this.opts.maxInFlight && record.nextIndex < items.length) {
      const index = record.nextIndex;
      const next = await this.batches.update(batchId, (r) => {
        if (r.nextIndex !== index || r.leaseOwner !== this.opts.owner || r.cancelRequested) return undefined;
        r.nextIndex++;
        r.inFlight.push(index);
        return r;
      });
      if (!next || next.nextIndex !== index + 1 || !next.inFlight.includes(index)) return next ?? record;
      record = next;
      const outcome = await this.submit(record, index, items[index]!);
      if (outcome === "refused") break;
      if (outcome instanceof Error) {
        const result = failed(items[index]!, outcome);
        await this.batches.putItem(batchId, index, result);
        this.metrics.items.inc({ outcome: "failed" });
        record = (await this.batches.update(batchId, (r) => {
          if (!r.inFlight.includes(index)) return undefined;
          r.inFlight = r.inFlight.filter((i) => i !== index);
          count(r, JobState.FAILED);
          return r;
        }))!;
      }
    }
    return record;
  }

  /**
   * Admits one item's job. "refused" when the farm is over its admission limits (the item stays in flight and is
   * admitted on a later step); an Error when the item itself is bad and fails alone.
   */
  private async submit(record: BatchRecord, index: number, item: BatchItem): Promise<"admitted" | "refused" | Error> {
    const batchId = record.batch!.batchId;
    let admission;
    try {
      admission = await prepareItem(item);
    } catch (err) {
      return err as Error;
    }
    admission.lane = Lane.BATCH;
    admission.tenant = record.tenant;
    // A random seed would differ between re-admissions of the item: derive it from the item instead.
    if (item.request.value?.seed === 0n) admission.params.seed = BigInt(`0x${sha256(`seed/${batchId}/${index}`).slice(0, 15)}`);
    try {
      await this.admission.admit(itemJobId(batchId, index), admission);
      return "admitted";
    } catch (err) {
      const e = toFarmError(err);
      if (e.code === GrpcStatus.RESOURCE_EXHAUSTED) return "refused";
      if (e.code === GrpcStatus.INVALID_ARGUMENT) return e;
      throw err;
    }
  }

  /** Writes the results manifest (one line per item, in submission order) and ends the batch. */
  private async finish(batchId: string, items: BatchItem[], state: BatchState): Promise<void> {
    const lines: string[] = [];
    let cancelled = 0;
    for (let start = 0; start < items.length; start += 100) {
      const chunk = await Promise.all(items.slice(start, start + 100).map((_, k) => this.batches.getItem(batchId, start + k)));
      chunk.forEach((result, k) => {
        const item = items[start + k]!;
        if (!result) cancelled++;
        const line =
          result ?? create(BatchItemResultSchema, { customId: item.customId, state: JobState.CANCELLED, error: "the batch was cancelled" });
        lines.push(toJsonString(BatchItemResultSchema, line, { useProtoFieldName: true }));
      });
    }
    const key = resultsKey(batchId);
    await this.store.put(key, Buffer.from(lines.join("\n") + "\n"), "application/jsonl");
    if (cancelled > 0) this.metrics.items.inc({ outcome: "cancelled" }, cancelled);
    let ended = false;
    const done = await this.batches.update(batchId, (r) => {
      if (r.batch!.state !== BatchState.RUNNING || r.leaseOwner !== this.opts.owner) return undefined;
      ended = true;
      r.batch!.state = state;
      r.batch!.cancelled += cancelled;
      r.batch!.resultsKey = key;
      r.batch!.etaSeconds = 0;
      r.leaseOwner = "";
      return r;
    });
    if (!ended) return;
    this.metrics.batches.inc({ state: BatchState[state]!.toLowerCase() });
    this.log.info({ batchId, state: BatchState[state], ...countsOf(done) }, "batch ended");
  }
}

function resultOf(item: BatchItem, job: Job): BatchItemResult {
  return create(BatchItemResultSchema, {
    customId: item.customId,
    jobId: job.jobId,
    state: job.state,
    images: job.images.map((i) => ({ ...i, url: "", png: new Uint8Array() })),
    error: job.error,
  });
}

function failed(item: BatchItem, err: Error): BatchItemResult {
  return create(BatchItemResultSchema, { customId: item.customId, state: JobState.FAILED, error: err.message });
}

function count(r: BatchRecord, state: JobState): void {
  if (state === JobState.SUCCEEDED) r.batch!.succeeded++;
  else if (state === JobState.CANCELLED) r.batch!.cancelled++;
  else r.batch!.failed++;
}

function outcomeOf(state: JobState): string {
  return state === JobState.SUCCEEDED ? "succeeded" : state === JobState.CANCELLED ? "cancelled" : "failed";
}

function countsOf(r: BatchRecord | undefined) {
  const b = r?.batch;
  return { total: b?.total, succeeded: b?.succeeded, failed: b?.failed, cancelled: b?.cancelled };
}

/** The batch's own throughput (items ended per second), measured over at least two seconds and smoothed. */
function markRate(r: BatchRecord): void {
  const b = r.batch!;
  const ended = b.succeeded + b.failed + b.cancelled;
  const now = Date.now();
  const since = r.markAtMs > 0n ? Number(r.markAtMs) : Number(b.createdAtMs);
  const seconds = (now - since) / 1000;
  if (seconds < 2) return;
  const rate = (ended - r.endedAtMark) / seconds;
  r.ratePerSecond = r.ratePerSecond > 0 ? 0.5 * r.ratePerSecond + 0.5 * rate : rate;
  r.endedAtMark = ended;
  r.markAtMs = BigInt(now);
}

export { FarmError };
