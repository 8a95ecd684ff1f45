import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { collectDefaultMetrics, Counter, exponentialBuckets, Gauge, Histogram, Registry } from "prom-client";

/**
 * One registry per process, with `service` (and for workers `worker`, the process's unique name) on every series,
 * so that replicas of one pool stay apart even where no pod label is added. prom-client's default process metrics are kept except the nodejs_active_*_total
 * gauges, whose `_total` suffix on a gauge fails `promtool check metrics`.
 */
export function createRegistry(service: string, labels: Record<string, string> = {}): Registry {
  const registry = new Registry();
  registry.setDefaultLabels({ service, ...labels });
  collectDefaultMetrics({ register: registry });
  for (const name of ["nodejs_active_handles_total", "nodejs_active_requests_total", "nodejs_active_resources_total"]) {
    registry.removeSingleMetric(name);
  }
  new Counter({
    name: COLLECTION_ERRORS,
    help: "Metrics that could not be collected for a scrape (e.g. queue gauges while NATS is unreachable); the scrape itself still succeeds.",
    labelNames: ["metric"],
    registers: [registry],
  });
  return registry;
}

const COLLECTION_ERRORS = "unclip_metrics_collection_errors_total";

/**
 * Renders every metric on its own, so one whose collection fails (a gauge that reads NATS during an outage) is
 * left out of this scrape and counted, instead of failing the whole scrape: the alerts need the rest most then.
 */
export async function renderMetrics(registry: Registry): Promise<string> {
  const errors = registry.getSingleMetric(COLLECTION_ERRORS) as Counter<"metric"> | undefined;
  const parts = await Promise.all(
    registry.getMetricsAsArray().map(async (metric) => {
      if (metric.name === COLLECTION_ERRORS) return undefined;
      try {
        return await registry.getSingleMetricAsString(metric.name);
      } catch {
        errors?.inc({ metric: metric.name });
        return undefined;
      }
    }),
  );
  if (errors) parts.push(await registry.getSingleMetricAsString(COLLECTION_ERRORS));
  return `${parts.filter((p) => p !== undefined).join("\n\n")}\n`;
}

/**
 * 5 ms to 120 s in steps of 20 % (57 buckets): fine enough that a 20 % slower stage moves its p95 by a bucket,
 * where the old 1-2.5-5 steps could hide a 2× change.
 */
const latencyBuckets = exponentialBuckets(0.005, 1.2, 57);

/** The metrics every stage worker exports (labels: pool, stage, bundle, outcome). */
export class WorkerMetrics {
  readonly tasks: Counter<"pool" | "stage" | "outcome">;
  readonly stageSeconds: Histogram<"pool" | "stage" | "bundle">;
  readonly queueWaitSeconds: Histogram<"pool" | "stage" | "lane">;
  readonly batchSize: Histogram<"pool" | "stage">;
  readonly inFlight: Gauge<"pool">;
  readonly jobSeconds: Histogram<"kind" | "outcome" | "size" | "lane">;
  readonly bundleInfo: Gauge<"pool" | "bundle">;
  readonly imageSeconds: Histogram<"pool" | "stage" | "bundle">;
  readonly providerInfo: Gauge<"pool" | "provider">;

  constructor(registry: Registry) {
    const registers = [registry];
    this.tasks = new Counter({
      name: "unclip_tasks_total",
      help: "Stage tasks handled, by outcome: ok, retried, failed, cancelled.",
      labelNames: ["pool", "stage", "outcome"],
      registers,
    });
    this.stageSeconds = new Histogram({
      name: "unclip_stage_duration_seconds",
      help: "Time to run a stage for one batch, from the batch's start to its outputs being stored.",
      labelNames: ["pool", "stage", "bundle"],
      buckets: latencyBuckets,
      registers,
    });
    this.queueWaitSeconds = new Histogram({
      name: "unclip_queue_wait_seconds",
      help: "Time a task waited in its stage's queue before a worker started it, by lane (interactive or batch).",
      labelNames: ["pool", "stage", "lane"],
      buckets: latencyBuckets,
      registers,
    });
    this.batchSize = new Histogram({
      name: "unclip_batch_size",
      help: "Tasks run together in one model batch.",
      labelNames: ["pool", "stage"],
      buckets: [1, 2, 4, 8, 16, 32, 64],
      registers,
    });
    this.inFlight = new Gauge({
      name: "unclip_tasks_in_flight",
      help: "Tasks this worker holds (running or waiting to be batched).",
      labelNames: ["pool"],
      registers,
    });
    this.jobSeconds = new Histogram({
      name: "unclip_job_duration_seconds",
      help: "End-to-end job latency, from admission to the last image stored, by kind, outcome, output size and lane.",
      labelNames: ["kind", "outcome", "size", "lane"],
      buckets: latencyBuckets,
      registers,
    });
    this.imageSeconds = new Histogram({
      name: "unclip_stage_image_seconds",
      help: "Model time of a stage per image: its batch's model time divided by the images in the batch (one observation per image).",
      labelNames: ["pool", "stage", "bundle"],
      buckets: latencyBuckets,
      registers,
    });
    this.providerInfo = new Gauge({
      name: "unclip_execution_provider_info",
      help: "The ONNX Runtime execution provider a worker really runs on (cuda falls back to cpu when its provider is missing); always 1.",
      labelNames: ["pool", "provider"],
      registers,
    });
    this.bundleInfo = new Gauge({
      name: "unclip_model_bundle_info",
      help: "The model bundle a worker serves (value is always 1).",
      labelNames: ["pool", "bundle"],
      registers,
    });
  }
}

/**
 * Serves GET /metrics (Prometheus text format) and GET /healthz (200 while `healthy()` holds, else 503, for
 * Kubernetes probes). Port 0 picks a free port.
 */
export async function serveMetrics(
  registry: Registry,
  port: number,
  healthy: () => boolean = () => true,
  host = "0.0.0.0",
): Promise<{ server: Server; port: number }> {
  const server = createServer((req, res) => {
    if (req.url === "/metrics") {
      renderMetrics(registry)
        .then((text) => {
          res.writeHead(200, { "Content-Type": registry.contentType });
          res.end(text);
        })
        .catch((err: Error) => {
          res.writeHead(500).end(err.message);
        });
    } else if (req.url === "/healthz") {
      const ok = healthy();
      res.writeHead(ok ? 200 : 503).end(ok ? "ok\n" : "unhealthy\n");
    } else {
      res.writeHead(404).end();
    }
  });
  await new Promise<void>((resolve, reject) => server.once("error", reject).listen(port, host, resolve));
  return { server, port: (server.address() as AddressInfo).port };
}
