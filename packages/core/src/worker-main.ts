import { hostname } from "node:os";
import { ConfigError, int, loadCommonConfig, oneOf, str, type CommonConfig, type Env } from "./config.js";
import { armFaultPoints, loadFaultPoints, type FaultPoints } from "./fault-points.js";
import { createLogger, type Logger } from "./logger.js";
import { createRegistry, serveMetrics, WorkerMetrics } from "./metrics.js";
import { connectFarm, type FarmConnection } from "./nats.js";
import { ObjectStore } from "./object-store.js";
import { Shutdown } from "./shutdown.js";
import { StageWorker, type StageHandler, type StageWorkerOptions } from "./stage-worker.js";

export interface WorkerConfig extends CommonConfig {
  readonly worker: StageWorkerOptions;
  /** Model bundle directory (UNCLIP_BUNDLE). */
  readonly bundle: string;
  readonly executionProvider: "cpu" | "cuda";
  /** ONNX Runtime intra-op threads per session (UNCLIP_INTRA_OP_THREADS; 0 = every core this process may run on; the worker's default). */
  readonly intraOpThreads: number;
  /** Whether idle intra-op threads busy-wait for work (UNCLIP_INTRA_OP_SPINNING; default false). */
  readonly spinning: boolean;
  readonly forceMs: number;
  /** Points where the worker kills itself on purpose, for the chaos suite (UNCLIP_FAULT_POINTS; none by default). */
  readonly faultPoints: FaultPoints;
}

/** A worker's defaults, each overridden by its variable. */
export interface WorkerDefaults {
  metricsPort: number;
  maxBatch: number;
  bundle: string;
  /** ONNX Runtime intra-op threads per session (UNCLIP_INTRA_OP_THREADS; default 0, every core the process may run on). */
  intraOpThreads?: number;
}

export function loadWorkerConfig(env: Env, defaults: WorkerDefaults): WorkerConfig {
  const common = loadCommonConfig(env, defaults.metricsPort);
  const maxBatch = int(env, "UNCLIP_MAX_BATCH", defaults.maxBatch, 1, 256);
  return {
    ...common,
    bundle: str(env, "UNCLIP_BUNDLE", defaults.bundle),
    executionProvider: oneOf(env, "UNCLIP_EXECUTION_PROVIDER", "cpu", ["cpu", "cuda"] as const),
    intraOpThreads: int(env, "UNCLIP_INTRA_OP_THREADS", defaults.intraOpThreads ?? 0, 0, 256),
    spinning: oneOf(env, "UNCLIP_INTRA_OP_SPINNING", "false", ["true", "false"] as const) === "true",
    forceMs: int(env, "UNCLIP_SHUTDOWN_FORCE_MS", 60_000, 1_000, 3_600_000),
    faultPoints: loadFaultPoints(env),
    worker: {
      maxBatch,
      prefetch: int(env, "UNCLIP_PREFETCH", maxBatch, 0, 4096),
      maxWaitMs: int(env, "UNCLIP_MAX_WAIT_MS", 20, 0, 60_000),
      stepEventMs: int(env, "UNCLIP_STEP_EVENT_MS", 100, 0, 60_000),
      ackWaitMs: int(env, "UNCLIP_ACK_WAIT_MS", 30_000, 1_000, 3_600_000),
      maxDeliver: int(env, "UNCLIP_MAX_DELIVER", 8, 1, 100),
      retryBackoffMs: msList(env, "UNCLIP_RETRY_BACKOFF_MS", [1_000, 2_000, 5_000, 10_000, 30_000]),
      stallMs: int(env, "UNCLIP_STALL_MS", 120_000, 100, 3_600_000),
      graceMs: int(env, "UNCLIP_SHUTDOWN_GRACE_MS", 20_000, 0, 3_600_000),
      workerName: str(env, "UNCLIP_WORKER_NAME", `${hostname()}-${process.pid}`),
    },
  };
}

/** A comma-separated list of durations in ms, e.g. "1000,2000,5000"; each from 0 to one hour. */
function msList(env: Env, name: string, fallback: readonly number[]): readonly number[] {
  const raw = env[name];
  if (raw === undefined || raw.trim() === "") return fallback;
  const values = raw.split(",").map((v) => Number(v.trim()));
  if (values.some((v) => !Number.isInteger(v) || v < 0 || v > 3_600_000)) {
    throw new ConfigError(`${name}=${JSON.stringify(raw)} must be a comma-separated list of integers from 0 to 3600000 (ms)`);
  }
  return values;
}

export interface WorkerDeps {
  config: WorkerConfig;
  /** The environment the config was compiled from, for a stage's own settings. */
  env: Env;
  log: Logger;
  store: ObjectStore;
}

/**
 * The main() of every stage worker: config, logging, metrics, NATS, object store, the stage handler, and a
 * graceful shutdown on SIGTERM (stop fetching, finish or release in-flight tasks, close connections).
 */
export async function runWorker(
  service: string,
  defaults: WorkerDefaults,
  makeHandler: (deps: WorkerDeps) => Promise<StageHandler & { close?(): Promise<void> }>,
  env: Env = process.env,
): Promise<void> {
  let config: WorkerConfig;
  try {
    config = loadWorkerConfig(env, defaults);
  } catch (err) {
    console.error(`${service}: ${(err as Error).message}`);
    process.exit(2);
  }
  const log = createLogger(service, config.logLevel, { worker: config.worker.workerName });
  const shutdown = new Shutdown(log, config.forceMs).installSignalHandlers();
  armFaultPoints(config.faultPoints, log);
  try {
    const registry = createRegistry(service, { worker: config.worker.workerName });
    let worker: StageWorker | undefined;
    let conn: FarmConnection | undefined;
    // Healthy once the model is loaded and the worker pulls tasks, while NATS is connected.
    const metrics = await serveMetrics(registry, config.metricsPort, () => worker?.running === true && conn?.nc.isClosed() === false);
    shutdown.add("metrics server", () => new Promise((resolve) => metrics.server.close(resolve)));
    const store = new ObjectStore(config.s3);
    await store.ensureBucket();
    conn = await connectFarm(config.nats, `${service}-${config.worker.workerName}`);
    const handler = await makeHandler({ config, env, log, store });
    worker = new StageWorker(conn, store, handler, config.worker, log, new WorkerMetrics(registry));
    // Order matters: stop taking tasks and finish in-flight ones before closing the model and the connection.
    shutdown.add("stage worker", () => worker!.stop());
    if (handler.close) shutdown.add("model", () => handler.close!());
    shutdown.add("nats", () => conn!.nc.drain());
    await worker.start();
    log.info({ metricsPort: metrics.port, nats: config.natsUrl, s3: config.s3.endpoint }, `${service} ready`);
  } catch (err) {
    log.fatal({ err }, `${service} failed to start`);
    await shutdown.run();
    process.exit(1);
  }
}
