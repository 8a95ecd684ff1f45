import { cpus } from "node:os";
import { performance } from "node:perf_hooks";
import { setTimeout as sleep } from "node:timers/promises";
import { connectFarm } from "@unclip/core";
import { startNatsServer } from "@unclip/devstack";
import { BacklogSampler } from "./backlog-sampler.js";
import type { PoolProfile } from "./sim-config.js";
import type { SimContext } from "./sim-context.js";
import { percentile, steadyStateStats, steadyWindow, type SteadyStateStats } from "./steady-state.js";
import { TaskFeeder } from "./task-feeder.js";
import { TimedObjectStore } from "./timed-object-store.js";
import { WorkerFleet } from "./worker-fleet.js";

export interface SaturationResult extends SteadyStateStats {
  readonly pool: string;
  readonly workers: number;
  readonly maxBatch: number;
  readonly prefetch: number;
  /** Scaled model time per full batch. */
  readonly batchSeconds: number;
  /** workers × maxBatch / batchSeconds. */
  readonly idealTasksPerSecond: number;
  readonly ratio: number;
  /** Tasks the feeder keeps waiting on the server: two full holdings (batch + prefetch) per worker. */
  readonly backlogTarget: number;
  /** S3 puts of the run's images (decoder and upscale), which each worker makes between two batches. */
  readonly s3PutP50Ms: number;
  readonly s3PutP99Ms: number;
  /** CPU this process (workers, feeder, S3 server) used in the window, in cores; the machine has cpus().length. */
  readonly simCpuCores: number;
  readonly simEventLoopUtilisation: number;
  /** Share of all cores busy in the window, every process on the machine included. */
  readonly machineCpuBusy: number;
}

/**
 * `workers` workers of one pool against a fresh nats-server, its queue kept above capacity: a feeder tops the
 * consumer's pending count up to the backlog target every 100 ms, so every fetch finds tasks.
 */
export async function runSaturation(ctx: SimContext, profile: PoolProfile, workers: number, seconds: number): Promise<SaturationResult> {
  const batchMs = profile.batchSeconds * ctx.timeScale * 1000;
  const backlogTarget = 2 * workers * (profile.maxBatch + profile.prefetch);
  const store = new TimedObjectStore(ctx.s3);
  const nats = await startNatsServer();
  const conn = await connectFarm(nats.url, "scale-sim-feeder");
  const fleet = new WorkerFleet({ natsUrl: nats.url, store, profile, batchMs, outputs: ctx.outputs, log: ctx.log, metrics: ctx.metrics });
  let sampler: BacklogSampler | undefined;
  try {
    const feeder = new TaskFeeder(conn, profile.stage, `sat-${profile.pool}-${workers}`, ctx.outputs);
    await feeder.publish(backlogTarget);
    await fleet.grow(workers);
    sampler = new BacklogSampler(conn.jsm, profile.pool, 100, async ({ pending }) => {
      if (pending < backlogTarget) await feeder.publish(backlogTarget - pending);
    });
    // A handler records a batch when it ends: wait for every worker's first batch, and after the window until every
    // worker finished one that ran past it, so that batches across the window's edges are counted.
    if (!(await until(() => fleet.handlers.every((h) => h.batches.length > 0), 60_000 + 2 * batchMs))) {
      throw new Error(`${profile.pool}: not every one of ${workers} workers finished a batch within a minute`);
    }
    const window = steadyWindow(batchesOf(fleet), batchMs, seconds);
    await sleep(window.startMs - Date.now());
    const usage = startUsage();
    await sleep(window.endMs - Date.now());
    const used = usage.end(seconds);
    await until(() => fleet.handlers.every((h) => h.batches.at(-1)!.endMs >= window.endMs), 3 * batchMs + 10_000);
    const stats = steadyStateStats(batchesOf(fleet), sampler.samples, window);
    const puts = [...store.putMs].sort((a, b) => a - b);
    const idealTasksPerSecond = (workers * profile.maxBatch) / (batchMs / 1000);
    return {
      pool: profile.pool,
      workers,
      maxBatch: profile.maxBatch,
      prefetch: profile.prefetch,
      batchSeconds: batchMs / 1000,
      idealTasksPerSecond,
      ratio: stats.tasksPerSecond / idealTasksPerSecond,
      backlogTarget,
      s3PutP50Ms: percentile(puts, 0.5),
      s3PutP99Ms: percentile(puts, 0.99),
      ...stats,
      ...used,
    };
  } finally {
    await sampler?.stop();
    await fleet.stop();
    await conn.nc.close();
    await nats.stop();
  }
}

async function until(condition: () => boolean, timeoutMs: number): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) return false;
    await sleep(50);
  }
  return true;
}

function batchesOf(fleet: WorkerFleet) {
  return fleet.handlers.map((h) => h.batches);
}

function startUsage() {
  const cpu = process.cpuUsage();
  const elu = performance.eventLoopUtilization();
  const machine = machineTimes();
  return {
    end(seconds: number) {
      const { user, system } = process.cpuUsage(cpu);
      const after = machineTimes();
      return {
        simCpuCores: (user + system) / 1e6 / seconds,
        simEventLoopUtilisation: performance.eventLoopUtilization(elu).utilization,
        machineCpuBusy: 1 - (after.idle - machine.idle) / (after.total - machine.total),
      };
    },
  };
}

function machineTimes(): { idle: number; total: number } {
  let idle = 0;
  let total = 0;
  for (const { times } of cpus()) {
    idle += times.idle;
    total += times.user + times.nice + times.sys + times.idle + times.irq;
  }
  return { idle, total };
}
