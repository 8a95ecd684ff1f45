import { mkdir } from "node:fs/promises";
import path from "node:path";
import { startNatsServer, type NatsServerHandle } from "./nats-server.js";
import { startS3Server, type S3ServerHandle } from "./s3-server.js";
import { repoRoot, startService, type ServiceName, type ServiceProcess } from "./service-process.js";

export interface FarmStackOptions {
  /** Model bundle of the prior and decoder workers (default: the farm's default bundle). */
  bundle?: string;
  /** Bundle of the upscale worker: a directory or esrgan-<slim|medium>-x<scale> (default esrgan-slim-x4). */
  upscalerBundle?: string;
  /** Extra environment for every service, e.g. UNCLIP_ACK_WAIT_MS. */
  env?: Record<string, string>;
  /** Extra environment per service. */
  serviceEnv?: Partial<Record<ServiceName, Record<string, string>>>;
  /** Where service logs go (one file per service); default: kept in memory only. */
  logDir?: string;
  /** gRPC port of the gateway (default: any free port). */
  grpcPort?: number;
}

export interface FarmStack {
  readonly nats: NatsServerHandle;
  readonly s3: S3ServerHandle;
  readonly grpcAddress: string;
  readonly services: Map<ServiceName, ServiceProcess>;
  /** Environment that points a process at this farm's NATS and object store. */
  readonly env: Record<string, string>;
  startService(name: ServiceName, extraEnv?: Record<string, string>): Promise<ServiceProcess>;
  stop(): Promise<void>;
}

const WORKERS: ServiceName[] = ["prior-worker", "decoder-worker", "upscale-worker"];

/** One machine's farm: nats-server, the embedded S3 server, the gateway and one process per stage. */
export async function startFarmStack(opts: FarmStackOptions = {}): Promise<FarmStack> {
  const nats = await startNatsServer();
  const s3 = await startS3Server().catch(async (err) => {
    await nats.stop();
    throw err;
  });
  const env: Record<string, string> = {
    UNCLIP_NATS_URL: nats.url,
    UNCLIP_S3_ENDPOINT: s3.endpoint,
    UNCLIP_S3_ACCESS_KEY: s3.accessKey,
    UNCLIP_S3_SECRET_KEY: s3.secretKey,
    UNCLIP_METRICS_PORT: "0",
    ...opts.env,
  };
  if (opts.logDir) await mkdir(opts.logDir, { recursive: true });
  const services = new Map<ServiceName, ServiceProcess>();
  const serviceEnv = (name: ServiceName): Record<string, string> => {
    const e: Record<string, string> = { ...env, UNCLIP_WORKER_NAME: name };
    if (name === "gateway") e.UNCLIP_GRPC_PORT = String(opts.grpcPort ?? 0);
    if ((name === "prior-worker" || name === "decoder-worker") && opts.bundle) e.UNCLIP_BUNDLE = opts.bundle;
    if (name === "upscale-worker" && opts.upscalerBundle) e.UNCLIP_BUNDLE = opts.upscalerBundle;
    return { ...e, ...opts.serviceEnv?.[name] };
  };
  const start = async (name: ServiceName, extraEnv: Record<string, string> = {}) => {
    const proc = await startService(
      name,
      { ...serviceEnv(name), ...extraEnv },
      {
        logFile: opts.logDir ? path.join(opts.logDir, `${name}.log`) : undefined,
        readyTimeoutMs: 180_000,
      },
    );
    services.set(name, proc);
    return proc;
  };
  const stop = async () => {
    // Gateway first (no new jobs), then workers (they finish or release their tasks), then the servers.
    await services.get("gateway")?.stop();
    await Promise.all(WORKERS.map((w) => services.get(w)?.stop()));
    await s3.stop();
    await nats.stop();
  };
  try {
    const gateway = await start("gateway");
    // The upscale worker may convert its model on first start; the others load while it does.
    await Promise.all(WORKERS.map((w) => start(w)));
    return { nats, s3, grpcAddress: `127.0.0.1:${String(gateway.ready.grpcPort)}`, services, env, startService: start, stop };
  } catch (err) {
    await stop();
    throw err;
  }
}

export { repoRoot };
