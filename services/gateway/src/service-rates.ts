import { stagePool, type Pool, type Stage, type WorkerReport } from "@unclip/protocol";
import { REPORT_INTERVAL_MS } from "@unclip/core";

/** Weight of the newest batch in the moving averages: about the last ten batches count. */
const SMOOTHING = 0.2;
/** Seconds per task assumed for a stage before any worker has reported a batch of it. */
export const UNMEASURED_TASK_SECONDS = 1;
/** A worker not heard from for this long is taken for gone. */
const LIVENESS_MS = 3 * REPORT_INTERVAL_MS;

/**
 * Service rates and live workers per pool, learnt from the workers' reports (WorkerReport on farm.stats.<pool>).
 * Times are per task of one worker, batching included: a batch of 8 that took 2 s counts 0.25 s per task.
 * Diffusion stages are also kept per step, so a job asking for twice the steps weighs twice as much.
 */
export class ServiceRates {
  private readonly perStep = new Map<Stage, number>();
  private readonly perTask = new Map<Stage, number>();
  private readonly poolPerTask = new Map<Pool, number>();
  private readonly defaultSteps = new Map<Stage, number>();
  private readonly lastSteps = new Map<Stage, number>();
  private readonly seen = new Map<Pool, Map<string, number>>();

  constructor(private readonly now: () => number = Date.now) {}

  observe(report: WorkerReport): void {
    const pool = report.pool as Pool;
    let workers = this.seen.get(pool);
    if (!workers) this.seen.set(pool, (workers = new Map()));
    workers.set(report.worker, this.now());
    for (const [stage, steps] of Object.entries(report.defaultSteps)) if (steps > 0) this.defaultSteps.set(Number(stage), steps);
    const batch = report.batch;
    if (!batch || batch.tasks === 0 || !(batch.seconds >= 0)) return;
    const perTask = batch.seconds / batch.tasks;
    smooth(this.perTask, batch.stage, perTask);
    smooth(this.poolPerTask, stagePool(batch.stage), perTask);
    if (batch.steps > 0) {
      smooth(this.perStep, batch.stage, perTask / batch.steps);
      this.lastSteps.set(batch.stage, batch.steps);
    }
  }

  /** Workers of the pool heard from recently. */
  liveWorkers(pool: Pool): number {
    const workers = this.seen.get(pool);
    if (!workers) return 0;
    const cutoff = this.now() - LIVENESS_MS;
    for (const [name, at] of workers) if (at < cutoff) workers.delete(name);
    return workers.size;
  }

  /** One worker's seconds for one task of `stage`; `steps` 0 means the bundle's default. */
  taskSeconds(stage: Stage, steps: number): number {
    const perStep = this.perStep.get(stage);
    const resolved = steps || this.defaultSteps.get(stage) || this.lastSteps.get(stage);
    if (perStep !== undefined && resolved) return perStep * resolved;
    return this.perTask.get(stage) ?? this.poolTaskSeconds(stagePool(stage));
  }

  /** One worker's seconds for an average task of the pool (for tasks already queued, whose steps are unknown). */
  poolTaskSeconds(pool: Pool): number {
    return this.poolPerTask.get(pool) ?? UNMEASURED_TASK_SECONDS;
  }
}

function smooth<K>(map: Map<K, number>, key: K, value: number): void {
  const old = map.get(key);
  map.set(key, old === undefined ? value : old + SMOOTHING * (value - old));
}
