import { Server, ServerCredentials } from "@grpc/grpc-js";
import type { PackageDefinition } from "@grpc/proto-loader";
import { ReflectionService } from "@grpc/reflection";
import { HealthImplementation } from "grpc-health-check";
import { Counter, Gauge } from "prom-client";
import {
  armFaultPoints,
  connectFarm,
  createLogger,
  createRegistry,
  ObjectStore,
  LANES,
  poolBacklog,
  serveMetrics,
  Shutdown,
  subscribeWorkerReports,
  watchDeadLetters,
} from "@unclip/core";
import { farmFileDescriptors, grpcServiceDefinition, Lane, UnclipService, type Pool } from "@unclip/protocol";
import { loadGatewayConfig, type GatewayConfig } from "./config.js";
import { AdmissionGate } from "./admission-gate.js";
import { ApiKeys } from "./api-keys.js";
import { batchServices } from "./batch-services.js";
import { cancellationInterceptor } from "./call-cancellation.js";
import { JobAdmission } from "./job-admission.js";
import { usePromptTokenizerOf } from "./prompt-tokens.js";
import { MAX_UPLOAD_BYTES } from "./request-validation.js";
import { JobReconciler, PendingAdmissions } from "./job-reconciler.js";
import { ServiceRates } from "./service-rates.js";
import { TenantAuth } from "./tenant-auth.js";
import { TenantQuota } from "./tenant-quota.js";
import { unclipService, type ServiceAccess } from "./unclip-service.js";

const SERVICE = "gateway";
const POOLS: Pool[] = ["prior", "decoder", "upscale"];

let config: GatewayConfig;
try {
  config = loadGatewayConfig();
} catch (err) {
  console.error(`${SERVICE}: ${(err as Error).message}`);
  process.exit(2);
}
const log = createLogger(SERVICE, config.logLevel);
let keys: ApiKeys | undefined;
try {
  keys = config.apiKeysFile ? new ApiKeys(config.apiKeysFile, log) : undefined;
} catch (err) {
  console.error(`${SERVICE}: ${(err as Error).message}`);
  process.exit(2);
}
if (keys) log.info({ file: keys.path, tenants: keys.tenants.map((t) => t.name) }, "API keys loaded: every UnclipService call needs one");
else log.warn("UNCLIP_API_KEYS_FILE is not set: the farm is open, and anyone who can reach it can submit, read and cancel any job");
const shutdown = new Shutdown(log, config.forceMs).installSignalHandlers();
armFaultPoints(config.faultPoints, log);

try {
  // Prompts are counted in tokens by the prior pool's own tokenizer, so one too long is refused before it is queued.
  const tokenizer = await usePromptTokenizerOf(config.bundle);
  log.info({ bundle: config.bundle, maxTokens: tokenizer.maxLength }, "prompt tokenizer loaded");
  const registry = createRegistry(SERVICE);
  const conn = await connectFarm(config.nats, SERVICE, { jobTtlSeconds: config.jobTtlSeconds, owner: true });
  const store = new ObjectStore(config.s3);
  await store.ensureBucket();

  const requests = new Counter({
    name: "unclip_grpc_requests_total",
    help: "gRPC requests handled by the gateway, by method and status code.",
    labelNames: ["method", "code"],
    registers: [registry],
  });
  const jobs = new Counter({
    name: "unclip_jobs_admitted_total",
    help: "Jobs admitted, by kind.",
    labelNames: ["kind"],
    registers: [registry],
  });
  // One consumer-info query per pool, lane and scrape feeds both gauges.
  type LaneBacklog = { pool: Pool; lane: string; pending: number; inFlight: number };
  let backlogs: Promise<LaneBacklog[]> | undefined;
  const readBacklogs = () => {
    backlogs ??= Promise.all(
      POOLS.flatMap((pool) =>
        LANES.map(async (lane) => ({ pool, lane: Lane[lane]!.toLowerCase(), ...(await poolBacklog(conn.jsm, pool, lane)) })),
      ),
    ).finally(() => setTimeout(() => (backlogs = undefined), 1000).unref());
    return backlogs;
  };
  new Gauge({
    name: "unclip_queue_backlog_tasks",
    help: "Tasks waiting in each pool's lane (interactive or batch), not yet delivered to a worker.",
    labelNames: ["pool", "lane"],
    registers: [registry],
    async collect() {
      for (const b of await readBacklogs()) this.set({ pool: b.pool, lane: b.lane }, b.pending);
    },
  });
  new Gauge({
    name: "unclip_queue_in_flight_tasks",
    help: "Tasks of each pool's lane delivered to its workers and not yet acknowledged (pending + in flight is the KEDA lag).",
    labelNames: ["pool", "lane"],
    registers: [registry],
    async collect() {
      for (const b of await readBacklogs()) this.set({ pool: b.pool, lane: b.lane }, b.inFlight);
    },
  });

  const rates = new ServiceRates();
  const reports = subscribeWorkerReports(conn.nc, (r) => rates.observe(r));
  new Gauge({
    name: "unclip_pool_workers",
    help: "Workers of each pool heard from in the last 15 s (they report every 5 s).",
    labelNames: ["pool"],
    registers: [registry],
    collect() {
      for (const pool of POOLS) this.set({ pool }, rates.liveWorkers(pool));
    },
  });
  // Admission reads every pool fresh: the gate's race-freedom rests on reads that start after a publish seeing it.
  const gate = new AdmissionGate(
    async () =>
      new Map(
        await Promise.all(
          POOLS.map(async (pool) => {
            const b = await poolBacklog(conn.jsm, pool);
            return [pool, b.pending + b.inFlight] as const;
          }),
        ),
      ),
    rates,
    config,
  );
  const pending = await PendingAdmissions.open(conn, config.jobTtlSeconds);
  const tenantKeys = keys;
  const quota = tenantKeys
    ? await TenantQuota.start(
        conn.jobs,
        (tenant) => tenantKeys.tenant(tenant)?.maxQueuedImages ?? config.tenantMaxQueuedImages,
        config.jobTtlSeconds * 1000,
        log,
      )
    : undefined;
  const admission = new JobAdmission(conn, store, gate, rates, pending, quota);
  const access: ServiceAccess = { auth: new TenantAuth(keys), urlTtlMaxS: config.urlTtlMaxS };
  const reconciler = new JobReconciler(conn, admission.jobs, pending, log);
  reconciler.start();
  const { requestLedger, batchService, batchRunner } = await batchServices(conn, store, admission, config, log, registry, access);

  const deadLetters = watchDeadLetters(conn, log);
  // grpc-js refuses requests over 4 MiB by default; an edit carries two uploads of up to 16 MiB each, plus its fields.
  const server = new Server({
    "grpc.max_receive_message_length": 2 * MAX_UPLOAD_BYTES + 1024 * 1024,
    interceptors: [cancellationInterceptor],
  });
  server.addService(
    grpcServiceDefinition(UnclipService),
    unclipService(conn, store, admission, requestLedger, batchService, log, { requests, jobs }, access),
  );
  const health = new HealthImplementation({ "": "SERVING", [UnclipService.typeName]: "SERVING" });
  health.addToServer(server);
  // Reflection reads only fileDescriptorProtos; proto-loader's own loaders would merge the files into one.
  const descriptors = {
    format: "Protocol Buffer 3 FileDescriptorProto",
    type: {},
    fileDescriptorProtos: farmFileDescriptors().map((b) => Buffer.from(b)),
  };
  new ReflectionService({ "farm.v1": descriptors } as unknown as PackageDefinition).addToServer(server);
  const { tls } = config;
  // With a client CA, a client without a certificate it signed is refused in the TLS handshake (mutual TLS).
  const credentials = tls
    ? ServerCredentials.createSsl(tls.clientCa ?? null, [{ cert_chain: tls.cert, private_key: tls.key }], tls.clientCa !== undefined)
    : ServerCredentials.createInsecure();
  const grpcPort = await new Promise<number>((resolve, reject) =>
    server.bindAsync(`${config.grpcHost}:${config.grpcPort}`, credentials, (err, port) => (err ? reject(err) : resolve(port))),
  );
  const metrics = await serveMetrics(registry, config.metricsPort, () => !conn.nc.isClosed());

  (async () => {
    for await (const s of conn.nc.status()) {
      if (s.type === "disconnect") health.setStatus(UnclipService.typeName, "NOT_SERVING");
      if (s.type === "reconnect") health.setStatus(UnclipService.typeName, "SERVING");
    }
  })().catch((err: unknown) => log.error({ err }, "stopped following the NATS connection's status"));

  shutdown
    .add("health", () => {
      health.setStatus("", "NOT_SERVING");
      health.setStatus(UnclipService.typeName, "NOT_SERVING");
    })
    // Streams of long jobs would hold a graceful shutdown open: give them a few seconds, then cut them.
    .add(
      "grpc server",
      () =>
        new Promise<void>((resolve) => {
          const force = setTimeout(() => server.forceShutdown(), 5_000);
          server.tryShutdown(() => {
            clearTimeout(force);
            resolve();
          });
        }),
    )
    .add("metrics server", () => new Promise((resolve) => metrics.server.close(resolve)))
    .add("dead letters", () => deadLetters.stop())
    .add("worker reports", () => reports.unsubscribe())
    .add("batch runner", () => batchRunner.stop())
    .add("tenant quota", () => quota?.stop())
    .add("api keys", () => keys?.close())
    .add("admission reconciler", () => reconciler.stop())
    .add("nats", () => conn.nc.drain());
  const tlsMode = tls ? (tls.clientCa ? "mutual" : "server") : "off";
  log.info({ grpcPort, metricsPort: metrics.port, nats: config.natsUrl, s3: config.s3.endpoint, tls: tlsMode }, `${SERVICE} ready`);
} catch (err) {
  log.fatal({ err }, `${SERVICE} failed to start`);
  await shutdown.run();
  process.exit(1);
}
