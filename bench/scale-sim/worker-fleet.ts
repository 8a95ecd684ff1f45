import { connectFarm, StageWorker, type FarmConnection, type Logger, type ObjectStore, type WorkerMetrics } from "@unclip/core";
import type { PoolProfile } from "./sim-config.js";
import { SyntheticHandler, type SyntheticOutputs } from "./synthetic-handler.js";

/** Workers share NATS connections in groups of this size, as a few multi-GPU hosts would. */
const WORKERS_PER_CONNECTION = 8;

export interface FleetOptions {
  readonly natsUrl: string;
  readonly store: ObjectStore;
  readonly profile: PoolProfile;
  /** Scaled model time per batch. */
  readonly batchMs: number;
  readonly outputs: SyntheticOutputs;
  readonly log: Logger;
  readonly metrics: WorkerMetrics;
}

/** The real StageWorker runtime, `size` instances for one pool, each with its own synthetic model. */
export class WorkerFleet {
  /** Every handler that ran in this fleet, stopped workers' included, in start order. */
  readonly handlers: SyntheticHandler[] = [];
  /** Errors StageWorker.stop() rejected with: a runtime fault, which the report shows. */
  readonly stopErrors: string[] = [];
  private readonly running: StageWorker[] = [];
  private readonly connections: Promise<FarmConnection>[] = [];
  private readonly stopping: Promise<void>[] = [];

  constructor(private readonly opts: FleetOptions) {}

  get size(): number {
    return this.running.length;
  }

  async grow(n: number): Promise<void> {
    const { profile, store, log, metrics } = this.opts;
    const started: Promise<void>[] = [];
    for (let i = 0; i < n; i++) {
      const conn = await this.connection(this.running.length);
      const handler = new SyntheticHandler(profile.pool, this.opts.batchMs, this.opts.outputs);
      const worker = new StageWorker(
        conn,
        store,
        handler,
        {
          maxBatch: profile.maxBatch,
          prefetch: profile.prefetch,
          maxWaitMs: 20,
          stepEventMs: 100,
          ackWaitMs: 30_000,
          maxDeliver: 8,
          retryBackoffMs: [1_000, 2_000, 5_000, 10_000, 30_000],
          stallMs: 120_000,
          graceMs: 30_000,
          workerName: `${profile.pool}-${this.handlers.length}`,
        },
        log,
        metrics,
      );
      this.handlers.push(handler);
      this.running.push(worker);
      started.push(worker.start());
    }
    await Promise.all(started);
  }

  /** Stops the newest `n` workers; each finishes its running batch and releases what it prefetched. Returns at once. */
  shrink(n: number): void {
    for (const worker of this.running.splice(Math.max(0, this.running.length - n))) {
      this.stopping.push(worker.stop().catch((err: Error) => void this.stopErrors.push(err.stack ?? String(err))));
    }
  }

  async stop(): Promise<void> {
    this.shrink(this.running.length);
    await Promise.all(this.stopping);
    await Promise.all(this.connections.map(async (c) => (await c).nc.close()));
  }

  private connection(index: number): Promise<FarmConnection> {
    const group = Math.floor(index / WORKERS_PER_CONNECTION);
    this.connections[group] ??= connectFarm(this.opts.natsUrl, `scale-sim-${this.opts.profile.pool}-${group}`);
    return this.connections[group]!;
  }
}
