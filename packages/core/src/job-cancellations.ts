import type { NatsConnection, Subscription } from "@nats-io/transport-node";
import { FarmError, GrpcStatus } from "./errors.js";
import { CANCEL_SUBJECT } from "./nats.js";

/** Cancellations a worker remembers for tasks that have not reached it yet (their ids only; bounded). */
const REMEMBERED = 10_000;

/**
 * One AbortController per job a worker holds tasks of, aborted by the gateway's broadcast on CANCEL_SUBJECT: a
 * running model sees the abort at its next step, without polling. A cancellation for a job the worker does not
 * hold yet is remembered, so its task is dropped when it arrives.
 */
export class JobCancellations {
  private readonly jobs = new Map<string, { controller: AbortController; holders: number }>();
  private readonly recent = new Set<string>();
  private subscription: Subscription | undefined;

  start(nc: NatsConnection): void {
    this.subscription ??= nc.subscribe(CANCEL_SUBJECT, {
      callback: (err, msg) => {
        if (!err) this.cancel(msg.string());
      },
    });
  }

  stop(): void {
    this.subscription?.unsubscribe();
    this.subscription = undefined;
  }

  cancel(jobId: string): void {
    this.jobs.get(jobId)?.controller.abort(new FarmError(GrpcStatus.CANCELLED, "job cancelled", false, { jobId }));
    if (this.recent.size >= REMEMBERED) this.recent.delete(this.recent.values().next().value!);
    this.recent.add(jobId);
  }

  isCancelled(jobId: string): boolean {
    return this.recent.has(jobId);
  }

  /**
   * A signal that aborts once every one of `jobIds` is cancelled (a batch keeps running while any of its jobs still
   * wants its output), and a release to call when the batch is done with them.
   */
  watch(jobIds: readonly string[]): { signal: AbortSignal; release: () => void } {
    const unique = [...new Set(jobIds)];
    const signals = unique.map((id) => this.hold(id));
    const all = new AbortController();
    const check = () => {
      if (signals.every((s) => s.aborted)) all.abort(signals[0]!.reason);
    };
    for (const s of signals) s.addEventListener("abort", check, { once: true });
    check();
    let released = false;
    return {
      signal: all.signal,
      release: () => {
        if (released) return;
        released = true;
        for (const s of signals) s.removeEventListener("abort", check);
        for (const id of unique) this.unhold(id);
      },
    };
  }

  private hold(jobId: string): AbortSignal {
    let entry = this.jobs.get(jobId);
    if (!entry) {
      entry = { controller: new AbortController(), holders: 0 };
      this.jobs.set(jobId, entry);
      if (this.recent.has(jobId)) entry.controller.abort(new FarmError(GrpcStatus.CANCELLED, "job cancelled", false, { jobId }));
    }
    entry.holders++;
    return entry.controller.signal;
  }

  private unhold(jobId: string): void {
    const entry = this.jobs.get(jobId);
    if (entry && --entry.holders === 0) this.jobs.delete(jobId);
  }
}
