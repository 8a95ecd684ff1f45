import { mkdir } from "node:fs/promises";
import path from "node:path";
import type { Pool } from "@unclip/protocol";
import { farmWorkerCounts, POOLS } from "./farm-workers.js";
import { startFaultProxy, type FaultProxy } from "./fault-proxy.js";
import { startNatsServer, type NatsServerHandle } from "./nats-server.js";
import { startS3Server, type S3ServerHandle } from "./s3-server.js";
import { repoRoot, startService, type ServiceName, type ServiceProcess, type ServiceRuntime } from "./service-process.js";
import { SupervisedService, type RestartPolicy } from "./supervised-service.js";

export interface FarmStackOptions {
  /** Model bundle of the prior and decoder workers (default: the farm's default bundle). */
  bundle?: string;
  /**
   * Bundles of the upscale worker, comma-separated: directories or esrgan-<slim|medium>-x<scale> (default: the shapes
   * upsamplers for shapes-v1 images, esrgan-slim-x4 for the rest).
   */
  upscalerBundle?: string;
  /** Extra environment for every service, e.g. UNCLIP_ACK_WAIT_MS. */
  env?: Record<string, string>;
  /** Extra environment per service (for every worker of a pool). */
  serviceEnv?: Partial<Record<ServiceName, Record<string, string>>>;
  /**
   * Worker processes per pool, 1–32 each. Wins, pool by pool, over the launcher's UNCLIP_FARM_WORKERS
   * ("prior=1,decoder=3,upscale=2"); a pool named in neither gets one.
   */
  workers?: Partial<Record<Pool, number>>;
  /** When a process that exited is started again (default: 0.5 s, doubling up to 30 s, reset after 60 s up). */
  restartPolicy?: Partial<RestartPolicy>;
  /** Where the supervisor reports exits and restarts, one line each (default: nowhere). */
  log?: (line: string) => void;
  /** Where service logs go (one file per process, e.g. decoder-worker-2.log); default: kept in memory only. */
  logDir?: string;
  /** gRPC port of the gateway (default: any free port; a restarted gateway keeps the port it had). */
  grpcPort?: number;
  /** Run the services from their TypeScript sources (default) or from the bundles `npm run build` writes. */
  runtime?: ServiceRuntime;
  /**
   * Puts a fault proxy (startFaultProxy) between the services and the object store, so a test can stall or refuse
   * their S3 connections (default false). Presigned URLs handed to clients still point at the S3 server itself.
   */
  s3Proxy?: boolean;
}

export interface FarmStack {
  readonly nats: NatsServerHandle;
  readonly s3: S3ServerHandle;
  /** The proxy in front of the object store, with FarmStackOptions.s3Proxy. */
  readonly s3Proxy?: FaultProxy;
  readonly grpcAddress: string;
  /** Environment that points a process at this farm's NATS and object store. */
  readonly env: Record<string, string>;
  readonly gateway: SupervisedService;
  /** The supervised workers of a pool (of every pool when none is given) in start order, leaving out stopped ones. */
  workers(pool?: Pool): SupervisedService[];
  /** The gateway, then every worker (stopped ones left out). */
  services(): SupervisedService[];
  /** Starts one more supervised worker, named <pool>-worker-<next number>, with extra environment. */
  addWorker(pool: Pool, extraEnv?: Record<string, string>): Promise<SupervisedService>;
  /** Stops the gateway, then the workers (no restarts follow), then the object store and NATS. */
  stop(): Promise<void>;
}

/**
 * One machine's farm: nats-server, the embedded S3 server, the gateway and N worker processes per pool
 * (farmWorkerCounts), each one OS process supervised like a Kubernetes container (SupervisedService).
 */
export async function startFarmStack(opts: FarmStackOptions = {}): Promise<FarmStack> {
  const counts = farmWorkerCounts(process.env, opts.workers);
  const nats = await startNatsServer();
  const s3 = await startS3Server().catch(async (err) => {
    await nats.stop();
    throw err;
  });
  const s3Proxy = opts.s3Proxy
    ? await startFaultProxy({ targetPort: s3.port }).catch(async (err) => {
        await s3.stop();
        await nats.stop();
        throw err;
      })
    : undefined;
  const env: Record<string, string> = {
    UNCLIP_NATS_URL: nats.url,
    UNCLIP_S3_ENDPOINT: s3Proxy?.endpoint ?? s3.endpoint,
    ...(s3Proxy ? { UNCLIP_S3_PUBLIC_ENDPOINT: s3.endpoint } : {}),
    UNCLIP_S3_ACCESS_KEY: s3.accessKey,
    UNCLIP_S3_SECRET_KEY: s3.secretKey,
    UNCLIP_METRICS_PORT: "0",
    ...opts.env,
  };
  if (opts.logDir) await mkdir(opts.logDir, { recursive: true });

  const workers: { pool: Pool; service?: SupervisedService }[] = [];
  const numbers: Record<Pool, number> = { prior: 0, decoder: 0, upscale: 0 };
  const supervise = async (service: ServiceName, name: string, env: () => Record<string, string>) => {
    const logFile = opts.logDir ? path.join(opts.logDir, `${name}.log`) : undefined;
    const supervised = await SupervisedService.start({
      name,
      policy: opts.restartPolicy,
      start: () => startService(service, env(), { logFile, readyTimeoutMs: 180_000, runtime: opts.runtime }),
    });
    supervised
      .on("exit", (e) => {
        const what = e.error
          ? `did not start (${e.error.message.split("\n")[0]})`
          : `(pid ${String(e.pid)}) exited with ${e.signal ?? `code ${String(e.code)}`} after ${(e.uptimeMs / 1000).toFixed(1)} s`;
        opts.log?.(`${name} ${what}; restarting in ${(e.restartInMs / 1000).toFixed(1)} s`);
      })
      .on("restart", (p, n) => opts.log?.(`${name} restarted (restart ${n}): ${describeProcess(p)}`));
    return supervised;
  };
  const addWorker = async (pool: Pool, extraEnv: Record<string, string> = {}) => {
    const service: ServiceName = `${pool}-worker`;
    const name = `${service}-${++numbers[pool]}`;
    const bundle = pool === "upscale" ? opts.upscalerBundle : opts.bundle;
    const workerEnv = {
      ...env,
      ...(bundle ? { UNCLIP_BUNDLE: bundle } : {}),
      ...opts.serviceEnv?.[service],
      UNCLIP_WORKER_NAME: name,
      ...extraEnv,
    };
    const entry: (typeof workers)[number] = { pool };
    workers.push(entry); // keeps start order, whichever process is ready first
    try {
      entry.service = await supervise(service, name, () => workerEnv);
    } catch (err) {
      workers.splice(workers.indexOf(entry), 1);
      throw err;
    }
    return entry.service;
  };

  let gateway: SupervisedService | undefined;
  const running = (pool?: Pool) =>
    workers.flatMap((w) => (w.service && !w.service.stopped && (pool === undefined || w.pool === pool) ? [w.service] : []));
  const stop = async () => {
    const all = workers.flatMap((w) => (w.service ? [w.service] : [])); // stopped ones too: stop() waits for them
    // No restarts from here on, also for processes that got the same Ctrl-C as the launcher and are ending already.
    for (const s of [gateway, ...all]) s?.stopRestarting();
    // Gateway first (no new jobs), then workers (they finish or release their tasks), then the servers.
    await gateway?.stop();
    await Promise.all(all.map((w) => w.stop()));
    await s3Proxy?.close();
    await s3.stop();
    await nats.stop();
  };
  try {
    let grpcPort = opts.grpcPort ?? 0;
    gateway = await supervise("gateway", "gateway", () => ({
      ...env,
      // The gateway counts prompt tokens with the prior's bundle.
      ...(opts.bundle ? { UNCLIP_BUNDLE: opts.bundle } : {}),
      ...opts.serviceEnv?.gateway,
      UNCLIP_GRPC_PORT: String(grpcPort),
    }));
    grpcPort = Number(gateway.current.ready.grpcPort);
    // The upscale worker may convert its model on first start; the others load while it does.
    const started = await Promise.allSettled(POOLS.flatMap((pool) => Array.from({ length: counts[pool] }, () => addWorker(pool))));
    const failed = started.find((s) => s.status === "rejected");
    if (failed) throw failed.reason;
    const gw = gateway;
    return {
      nats,
      s3,
      s3Proxy,
      grpcAddress: `127.0.0.1:${String(grpcPort)}`,
      env,
      gateway: gw,
      workers: running,
      services: () => [gw, ...running()],
      addWorker,
      stop,
    };
  } catch (err) {
    await stop();
    throw err;
  }
}

/** "pid 1234, metrics :40123" */
export function describeProcess(p: ServiceProcess): string {
  return `pid ${String(p.child.pid)}, metrics :${String(p.ready.metricsPort)}`;
}

export { repoRoot };
