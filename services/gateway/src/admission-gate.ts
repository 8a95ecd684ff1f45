import { FarmError, GrpcStatus } from "@unclip/core";
import type { Pool } from "@unclip/protocol";
import type { ServiceRates } from "./service-rates.js";

/** A job's tasks and one worker's seconds of work, per pool it passes through. */
export type JobWork = Map<Pool, { tasks: number; seconds: number }>;

export interface AdmissionLimits {
  /** Most tasks queued or in flight across every pool, this job's included (UNCLIP_MAX_QUEUED_TASKS). */
  maxQueuedTasks: number;
  /** Longest ETA a new job may be given (UNCLIP_MAX_QUEUE_SECONDS); 0 turns this limit off. */
  maxQueueSeconds: number;
}

/** Tasks waiting plus tasks delivered and not yet acknowledged, per pool, as the server reports them now. */
export type BacklogReader = () => Promise<Map<Pool, number>>;

interface Reservation {
  work: JobWork;
  /** Number of backlog reads started before this job's tasks were all published; undefined while publishing. */
  publishedAfterRead?: number;
}

/**
 * Admission control on the whole farm's backlog, weighed by work. Each admission reads every pool's backlog (or
 * joins the read already under way: a burst of submits shares one), adds the jobs this gateway admitted that the
 * read may not show yet, and refuses the job with RESOURCE_EXHAUSTED (and a `retry-after-ms` hint) when the task
 * count or the ETA would pass its limit. The check and the reservation happen in one synchronous step, so concurrent
 * submits through this gateway cannot overshoot a limit; submits in flight through other gateways can, by at most
 * their own size.
 *
 * A job that arrives when the farm holds no work at all is always admitted, so no job is too big to ever run.
 */
export class AdmissionGate {
  private readonly reservations = new Set<Reservation>();
  private readsStarted = 0;
  private latest: { read: number; backlog: Map<Pool, number> } = { read: 0, backlog: new Map() };
  /** The read under way, which admissions arriving meanwhile join. */
  private reading: { read: number; backlog: Promise<Map<Pool, number>> } | undefined;

  constructor(
    private readonly readBacklog: BacklogReader,
    private readonly rates: ServiceRates,
    private readonly limits: AdmissionLimits,
  ) {}

  /** Checks and reserves the job, then runs `enqueue` with its ETA (seconds); refuses with RESOURCE_EXHAUSTED. */
  async admit<T>(work: JobWork, enqueue: (etaSeconds: number) => Promise<T>): Promise<T> {
    // Joining a read that started before this call is safe: reservations are dropped only by reads that started
    // after their tasks were published (below), so the ones this read cannot show yet still count.
    this.reading ??= this.startRead();
    const { read, backlog: reading } = this.reading;
    const backlog = await reading;
    // Reads can finish out of order: keep the newest, and drop the reservations it already shows.
    if (read > this.latest.read) {
      this.latest = { read, backlog };
      for (const r of this.reservations) if (r.publishedAfterRead !== undefined && r.publishedAfterRead < read) this.reservations.delete(r);
    }
    const reservation: Reservation = { work };
    const etaSeconds = this.check(work);
    this.reservations.add(reservation);
    try {
      const result = await enqueue(etaSeconds);
      reservation.publishedAfterRead = this.readsStarted;
      return result;
    } catch (err) {
      this.reservations.delete(reservation);
      throw err;
    }
  }

  private startRead(): { read: number; backlog: Promise<Map<Pool, number>> } {
    const read = ++this.readsStarted;
    const backlog = this.readBacklog().finally(() => {
      if (this.reading?.read === read) this.reading = undefined;
    });
    return { read, backlog };
  }

  /** The ETA of `work` behind everything queued; throws RESOURCE_EXHAUSTED over a limit. */
  private check(work: JobWork): number {
    const queued = new Map<Pool, { tasks: number; seconds: number }>();
    for (const [pool, tasks] of this.latest.backlog) queued.set(pool, { tasks, seconds: tasks * this.rates.poolTaskSeconds(pool) });
    for (const r of this.reservations) {
      for (const [pool, w] of r.work) {
        const q = queued.get(pool) ?? { tasks: 0, seconds: 0 };
        queued.set(pool, { tasks: q.tasks + w.tasks, seconds: q.seconds + w.seconds });
      }
    }
    const workers = (pool: Pool) => Math.max(1, this.rates.liveWorkers(pool));
    let queuedTasks = 0;
    let drainSeconds = 0;
    for (const [pool, q] of queued) {
      queuedTasks += q.tasks;
      drainSeconds = Math.max(drainSeconds, q.seconds / workers(pool));
    }
    // The job's images pass the pools in turn, each pool's queue ahead of them: a conservative sum over its pools.
    let etaSeconds = 0;
    let jobTasks = 0;
    for (const [pool, w] of work) {
      etaSeconds += ((queued.get(pool)?.seconds ?? 0) + w.seconds) / workers(pool);
      jobTasks += w.tasks;
    }
    if (queuedTasks === 0) return etaSeconds;
    const { maxQueuedTasks, maxQueueSeconds } = this.limits;
    if (queuedTasks + jobTasks > maxQueuedTasks) {
      const excess = queuedTasks + jobTasks - maxQueuedTasks;
      throw exhausted(
        `the farm's queues hold ${queuedTasks} tasks and this job adds ${jobTasks} (limit ${maxQueuedTasks})`,
        drainSeconds * Math.min(1, excess / queuedTasks) * 1000,
      );
    }
    if (maxQueueSeconds > 0 && etaSeconds > maxQueueSeconds) {
      throw exhausted(
        `the work queued ahead would make this job wait about ${Math.round(etaSeconds)} s (limit ${maxQueueSeconds} s)`,
        (etaSeconds - maxQueueSeconds) * 1000,
      );
    }
    return etaSeconds;
  }
}

function exhausted(reason: string, retryAfterMs: number): FarmError {
  const ms = Math.round(Math.min(600_000, Math.max(250, retryAfterMs)));
  return new FarmError(GrpcStatus.RESOURCE_EXHAUSTED, `${reason}; retry in ${(ms / 1000).toFixed(1)} s`, true, { retryAfterMs: ms });
}
