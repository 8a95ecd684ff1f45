import { hostname } from "node:os";
import { openBucket, type FarmConnection, type Logger, type ObjectStore } from "@unclip/core";
import { Counter, Gauge, type Registry } from "prom-client";
import { BatchItems } from "./batch-items.js";
import { BatchRunner } from "./batch-runner.js";
import { BatchService } from "./batch-service.js";
import { BATCH_BUCKET, BATCH_ITEM_BUCKET, BatchStore } from "./batch-store.js";
import type { GatewayConfig } from "./config.js";
import type { JobAdmission } from "./job-admission.js";
import { cancelJob } from "./job-cancel.js";
import { RequestLedger } from "./request-ledger.js";
import { defaultUrlTtl } from "./request-validation.js";
import type { ServiceAccess } from "./unclip-service.js";

export const REQUEST_BUCKET = "farm_requests";

/** The gateway's idempotency ledger, batch records and batch runner, on KV buckets that live as long as job records. */
export async function batchServices(
  conn: FarmConnection,
  store: ObjectStore,
  admission: JobAdmission,
  config: GatewayConfig,
  log: Logger,
  registry: Registry,
  access: ServiceAccess,
) {
  const [requestsKv, batchKv, itemKv] = await Promise.all(
    [REQUEST_BUCKET, BATCH_BUCKET, BATCH_ITEM_BUCKET].map((name) =>
      openBucket(conn.nc, conn.jsm, name, { ttlSeconds: config.jobTtlSeconds, replicas: conn.replicas, enforce: true }),
    ),
  );
  const jobs = admission.jobs;
  const requestLedger = new RequestLedger(requestsKv!, async (jobId) => (await jobs.get(jobId)) !== undefined);
  const batchStore = new BatchStore(batchKv!, itemKv!);
  const items = new BatchItems(store);
  const metrics = {
    items: new Counter({
      name: "unclip_batch_items_total",
      help: "Batch items ended, by outcome (succeeded, failed, cancelled); its rate is the batch throughput.",
      labelNames: ["outcome"],
      registers: [registry],
    }),
    batches: new Counter({
      name: "unclip_batches_total",
      help: "Batches ended, by final state (completed, cancelled).",
      labelNames: ["state"],
      registers: [registry],
    }),
    running: new Gauge({ name: "unclip_batches_running", help: "Batches running (any gateway's count).", registers: [registry] }),
  };
  const batchRunner = new BatchRunner(
    batchStore,
    items,
    admission,
    jobs,
    store,
    {
      owner: `${hostname()}-${process.pid}`,
      maxInFlight: config.batchInFlight,
      leaseMs: 10_000,
      tickMs: 500,
      cancelJob: (jobId, reason) => cancelJob(conn, jobs, jobId, reason),
    },
    log,
    metrics,
  );
  batchRunner.start();
  const batchService = new BatchService(batchStore, items, batchRunner, jobs, store, access.auth, defaultUrlTtl(access.urlTtlMaxS));
  return { requestLedger, batchService, batchRunner };
}
