import { FarmError, GrpcStatus, toFarmError } from "./errors.js";

/** What the worker does with a task whose stage failed. */
export type FailureDecision =
  /** Release it for another delivery after delayMs (nak with delay). */
  | { action: "retry"; delayMs: number; reason: string }
  /** Fail its job with `reason` and drop the task (term). */
  | { action: "fail"; reason: string }
  /** Its job was cancelled: drop the task (term) and leave the job as the canceller wrote it. */
  | { action: "cancel"; reason: string };

export interface FailureSettings {
  /** Deliveries before a task is given up (the consumer's max_deliver). */
  readonly maxDeliver: number;
  /** Delay before delivery n + 1 after delivery n failed: backoffMs[n - 1], the last entry repeating. */
  readonly backoffMs: readonly number[];
}

/** What else the worker knows about the task when it failed. */
export interface FailureContext {
  /** The delivery that failed (1 on the first). */
  readonly attempt: number;
  /** The task's job was cancelled meanwhile. */
  readonly cancelled: boolean;
  /** The worker is being forced to stop: the failure is the abort, not the task's fault. */
  readonly stopping: boolean;
  /** The stage's name ("decoder") and the task's image index, for readable reasons. */
  readonly stage: string;
  readonly index: number;
}

/**
 * The retry policy of the stage workers, as a pure function of the error and the delivery. Permanent errors (bad
 * input) fail the job at once; transient ones retry with backoff until the last delivery; a forced stop releases
 * the task at once without blaming it; a cancellation drops it.
 */
export function decideFailure(error: unknown, context: FailureContext, settings: FailureSettings): FailureDecision {
  const err = toFarmError(error);
  if (context.cancelled || err.code === GrpcStatus.CANCELLED) return { action: "cancel", reason: "job cancelled" };
  if (context.stopping) return { action: "retry", delayMs: 0, reason: "worker shutting down" };
  if (!err.retryable) return { action: "fail", reason: `the ${context.stage} stage refused image ${context.index}: ${err.message}` };
  if (context.attempt >= settings.maxDeliver) {
    return { action: "fail", reason: `the ${context.stage} stage failed ${context.attempt} times; last error: ${err.message}` };
  }
  return { action: "retry", delayMs: backoffDelay(context.attempt, settings.backoffMs, err), reason: err.message };
}

/** The delay after the given failed delivery; an error that says when to come back (retryAfterMs) can lengthen it. */
export function backoffDelay(attempt: number, backoffMs: readonly number[], err?: FarmError): number {
  const scheduled = backoffMs.length === 0 ? 0 : backoffMs[Math.min(attempt, backoffMs.length) - 1]!;
  return Math.max(scheduled, err?.retryAfterMs ?? 0);
}

/**
 * How long a task is retried for before its last delivery: the sum of the delays between its maxDeliver
 * deliveries. An outage shorter than this (less the time the attempts themselves take) fails no task.
 */
export function retryWindowMs(settings: FailureSettings): number {
  let total = 0;
  for (let attempt = 1; attempt < settings.maxDeliver; attempt++) total += backoffDelay(attempt, settings.backoffMs);
  return total;
}
