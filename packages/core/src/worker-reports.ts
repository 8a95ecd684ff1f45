import type { NatsConnection, Subscription } from "@nats-io/transport-node";
import {
  create,
  fromBinary,
  toBinary,
  BatchReportSchema,
  WorkerReportSchema,
  type Pool,
  type Stage,
  type WorkerReport,
} from "@unclip/protocol";
import { STATS_SUBJECT_PREFIX } from "./nats.js";

/** How often an idle worker says it is alive; a pool's live workers are those heard from within three periods. */
export const REPORT_INTERVAL_MS = 5_000;

/**
 * Publishes a worker's reports on farm.stats.<pool> (core NATS, fire and forget): one per finished batch and one
 * every REPORT_INTERVAL_MS, from which the gateway learns service rates and how many workers each pool has.
 */
export class WorkerReporter {
  private timer: NodeJS.Timeout | undefined;

  constructor(
    private readonly nc: NatsConnection,
    private readonly identity: { pool: Pool; worker: string; capacity: number; defaultSteps: Partial<Record<Stage, number>> },
  ) {}

  start(): void {
    this.send();
    this.timer ??= setInterval(() => this.send(), REPORT_INTERVAL_MS);
    this.timer.unref();
  }

  stop(): void {
    clearInterval(this.timer);
  }

  batch(stage: Stage, tasks: number, seconds: number, steps: number): void {
    this.send(create(BatchReportSchema, { stage, tasks, seconds, steps }));
  }

  private send(batch?: WorkerReport["batch"]): void {
    const { pool, worker, capacity, defaultSteps } = this.identity;
    const report = create(WorkerReportSchema, { pool, worker, capacity, defaultSteps: defaultSteps as Record<number, number>, batch });
    if (!this.nc.isClosed()) this.nc.publish(`${STATS_SUBJECT_PREFIX}.${pool}`, toBinary(WorkerReportSchema, report));
  }
}

/** Receives every worker's reports; undecodable messages are skipped. */
export function subscribeWorkerReports(nc: NatsConnection, onReport: (report: WorkerReport) => void): Subscription {
  return nc.subscribe(`${STATS_SUBJECT_PREFIX}.*`, {
    callback: (err, msg) => {
      if (err) return;
      try {
        onReport(fromBinary(WorkerReportSchema, msg.data));
      } catch {
        // A report from a newer or broken publisher: rates simply do not learn from it.
      }
    },
  });
}
