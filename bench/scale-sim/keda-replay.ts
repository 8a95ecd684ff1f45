import { setTimeout as sleep } from "node:timers/promises";
import { connectFarm, ObjectStore, poolBacklog, TASK_STREAM } from "@unclip/core";
import { startNatsServer } from "@unclip/devstack";
import { BacklogSampler } from "./backlog-sampler.js";
import type { PoolProfile } from "./sim-config.js";
import type { SimContext } from "./sim-context.js";
import { percentile } from "./steady-state.js";
import { TaskFeeder } from "./task-feeder.js";
import { WorkerFleet } from "./worker-fleet.js";

/** How often the HPA reads KEDA's metric and sets replicas (its default sync period). */
export const POLL_SECONDS = 15;
export const MAX_REPLICAS = 64;
/** Offered load before and after the step, and during it, in workers' worth of capacity. */
const LOW_WORKERS = 4;
const HIGH_WORKERS = 40;

export interface KedaPoint {
  readonly t: number;
  readonly replicas: number;
  /** Workers the arrival rate needs at full utilisation. */
  readonly neededWorkers: number;
  /** num_pending + num_ack_pending of the pool's consumers: what KEDA reads. */
  readonly lag: number;
}

export interface KedaDecision {
  readonly t: number;
  readonly lag: number;
  readonly replicas: number;
}

export interface KedaWaitBin {
  readonly t: number;
  readonly p50Seconds: number;
  readonly p99Seconds: number;
}

export interface KedaReplay {
  readonly pool: string;
  readonly lagThreshold: number;
  readonly batchSeconds: number;
  readonly stepStart: number;
  readonly stepEnd: number;
  readonly points: KedaPoint[];
  readonly decisions: KedaDecision[];
  readonly waits: KedaWaitBin[];
  /** When (seconds since start) JetStream gave up on a task after max_deliver deliveries, failing its job: never, ideally. */
  readonly deadLetteredAt: number[];
  /** Errors StageWorker.stop() rejected with during scale-down. */
  readonly stopErrors: string[];
}

/**
 * A load step against one pool, scaled the way KEDA's nats-jetstream scaler would: from 1 replica, every
 * POLL_SECONDS read lag and set replicas = min(MAX_REPLICAS, max(1, ceil(lag / lagThreshold))), with lagThreshold
 * one batch (maxBatch) or the most one worker holds (maxBatch + prefetch). Scaling up starts StageWorkers at once (no pod start or model
 * load); scaling down stops the newest ones, as a Deployment does, with no stabilisation window.
 */
export async function replayKeda(
  ctx: SimContext,
  profile: PoolProfile,
  seconds: number,
  threshold: "batch" | "batch+prefetch",
): Promise<KedaReplay> {
  const batchMs = profile.batchSeconds * ctx.timeScale * 1000;
  const lagThreshold = threshold === "batch" ? profile.maxBatch : profile.maxBatch + profile.prefetch;
  const perWorker = profile.maxBatch / (batchMs / 1000);
  const stepStart = Math.round(seconds * 0.2);
  const stepEnd = Math.round(seconds * 0.75);
  const neededAt = (t: number) => (t >= stepStart && t < stepEnd ? HIGH_WORKERS : LOW_WORKERS);
  const nats = await startNatsServer();
  const conn = await connectFarm(nats.url, "scale-sim-keda");
  const fleet = new WorkerFleet({
    natsUrl: nats.url,
    store: new ObjectStore(ctx.s3),
    profile,
    batchMs,
    outputs: ctx.outputs,
    log: ctx.log,
    metrics: ctx.metrics,
  });
  const feeder = new TaskFeeder(conn, profile.stage, `keda-${profile.pool}`, ctx.outputs);
  const points: KedaPoint[] = [];
  const decisions: KedaDecision[] = [];
  const t0 = Date.now();
  const elapsed = () => (Date.now() - t0) / 1000;
  const deadLetteredAt: number[] = [];
  const advisories = conn.nc.subscribe(`$JS.EVENT.ADVISORY.CONSUMER.MAX_DELIVERIES.${TASK_STREAM}.*`, {
    callback: () => void deadLetteredAt.push(elapsed()),
  });
  let sampler: BacklogSampler | undefined;
  try {
    await fleet.grow(1);
    sampler = new BacklogSampler(conn.jsm, profile.pool, 1000, async ({ atMs, pending, inFlight }) => {
      const t = (atMs - t0) / 1000;
      points.push({ t, replicas: fleet.size, neededWorkers: neededAt(t), lag: pending + inFlight });
    });
    const arrivals = (async () => {
      let offered = 0;
      let published = 0;
      for (let last = 0; last < seconds; ) {
        await sleep(100);
        const t = Math.min(seconds, elapsed());
        offered += (t - last) * neededAt(last) * perWorker;
        last = t;
        const due = Math.floor(offered) - published;
        published += due;
        if (due > 0) await feeder.publish(due);
      }
    })();
    for (let poll = POLL_SECONDS; poll < seconds; poll += POLL_SECONDS) {
      await sleep(t0 + poll * 1000 - Date.now());
      const { pending, inFlight } = await poolBacklog(conn.jsm, profile.pool);
      const replicas = Math.min(MAX_REPLICAS, Math.max(1, Math.ceil((pending + inFlight) / lagThreshold)));
      decisions.push({ t: elapsed(), lag: pending + inFlight, replicas });
      if (replicas > fleet.size) await fleet.grow(replicas - fleet.size);
      else fleet.shrink(fleet.size - replicas);
    }
    await arrivals;
  } finally {
    advisories.unsubscribe();
    await sampler?.stop();
    await fleet.stop();
    await conn.nc.close();
    await nats.stop();
  }
  return {
    pool: profile.pool,
    lagThreshold,
    batchSeconds: batchMs / 1000,
    stepStart,
    stepEnd,
    points,
    decisions,
    waits: waitBins(fleet, t0, 5),
    deadLetteredAt,
    stopErrors: fleet.stopErrors,
  };
}

/** Queue wait percentiles of the batches that started in each `binSeconds` bin. */
function waitBins(fleet: WorkerFleet, t0: number, binSeconds: number): KedaWaitBin[] {
  const bins = new Map<number, number[]>();
  for (const handler of fleet.handlers) {
    for (const batch of handler.batches) {
      const bin = Math.floor((batch.startMs - t0) / 1000 / binSeconds) * binSeconds;
      let waits = bins.get(bin);
      if (!waits) bins.set(bin, (waits = []));
      waits.push(...batch.waitsMs);
    }
  }
  return [...bins.entries()]
    .sort(([a], [b]) => a - b)
    .map(([t, waits]) => {
      waits.sort((a, b) => a - b);
      return { t: t + binSeconds / 2, p50Seconds: percentile(waits, 0.5) / 1000, p99Seconds: percentile(waits, 0.99) / 1000 };
    });
}
