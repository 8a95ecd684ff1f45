// Batch throughput and gateway memory: one BENCH_ITEMS-item batch (default 10,000) submitted as a JSONL manifest in the
// farm's bucket, run to the end on a local farm (tiny-random bundle, 64 px, BENCH_STEPS prior and decoder steps, one
// worker per pool), GetBatch polled every second and the gateway's RSS (VmRSS) sampled every second.
// Writes the figures as JSON to stdout and to BENCH_OUT (default out/batch-throughput.json).
import { mkdir, readFile, writeFile } from "node:fs/promises";
import { loadavg, cpus } from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { itemsToJsonl, UnclipClient } from "@unclip/cli";
import { ObjectStore } from "@unclip/core";
import { startFarmStack } from "@unclip/devstack";
import {
  create,
  BatchItemSchema,
  BatchState,
  GenerateRequestSchema,
  SamplingOptionsSchema,
  SubmitBatchRequestSchema,
  type Batch,
} from "@unclip/protocol";

const BUNDLE = process.env.BENCH_BUNDLE ?? fileURLToPath(new URL("../models/tiny-random/", import.meta.url));
const ITEMS = Number(process.env.BENCH_ITEMS ?? 10_000);
const STEPS = Number(process.env.BENCH_STEPS ?? 2);
const OUT = process.env.BENCH_OUT ?? fileURLToPath(new URL("../out/batch-throughput.json", import.meta.url));
const RSS_TARGET_MB = 300;
const prompts = ["a red circle on blue", "a green star top left", "a large yellow square", "a purple heart on white"];

const rssMb = async (pid: number | undefined): Promise<number | undefined> => {
  if (!pid) return undefined;
  const status = await readFile(`/proc/${pid}/status`, "utf8").catch(() => "");
  const kb = /^VmRSS:\s+(\d+) kB/m.exec(status)?.[1];
  return kb ? Number(kb) / 1024 : undefined;
};

const sampling = create(SamplingOptionsSchema, { priorSteps: STEPS, decoderSteps: STEPS });
const items = Array.from({ length: ITEMS }, (_, i) =>
  create(BatchItemSchema, {
    customId: `item-${i}`,
    request: {
      case: "generate",
      value: create(GenerateRequestSchema, { prompt: prompts[i % prompts.length]!, size: 64, seed: BigInt(i + 1), sampling }),
    },
  }),
);

const load = { start: loadavg()[0]! };
const farm = await startFarmStack({
  bundle: BUNDLE,
  upscalerBundle: BUNDLE,
  workers: { prior: 1, decoder: 1, upscale: 1 },
  logDir: path.join(path.dirname(OUT), "batch-throughput-logs"),
});
let gatewayRestarts = 0;
farm.gateway.on("restart", () => gatewayRestarts++);
const client = new UnclipClient(farm.grpcAddress);
try {
  const store = new ObjectStore({
    endpoint: farm.env.UNCLIP_S3_ENDPOINT!,
    publicEndpoint: farm.env.UNCLIP_S3_ENDPOINT!,
    accessKey: farm.env.UNCLIP_S3_ACCESS_KEY!,
    secretKey: farm.env.UNCLIP_S3_SECRET_KEY!,
    bucket: "unclip",
    region: "us-east-1",
    timeoutMs: 10_000,
  });
  await store.ensureBucket();
  const manifestKey = `bench/batch-${ITEMS}-${Date.now()}.jsonl`;
  const manifest = Buffer.from(itemsToJsonl(items));
  await store.put(manifestKey, manifest, "application/jsonl");

  const rssAtStart = (await rssMb(farm.gateway.current.child.pid)) ?? 0;
  let peakRss = rssAtStart;
  const rssSeries: [number, number][] = [];
  const started = performance.now();
  const sampler = setInterval(() => {
    void rssMb(farm.gateway.current.child.pid).then((mb) => {
      if (mb === undefined) return;
      peakRss = Math.max(peakRss, mb);
      rssSeries.push([Math.round((performance.now() - started) / 1000), Math.round(mb)]);
    });
  }, 1000);

  let batch: Batch = await client.submitBatch(create(SubmitBatchRequestSchema, { batchId: `bench-${Date.now()}`, manifestKey }), {
    timeoutMs: 300_000,
  });
  const submitSeconds = (performance.now() - started) / 1000;
  let lastLog = 0;
  while (batch.state === BatchState.RUNNING) {
    await new Promise((r) => setTimeout(r, 1000));
    batch = await client.getBatch(batch.batchId, { timeoutMs: 30_000 }).catch((err: Error) => {
      console.error(`GetBatch: ${err.message}`);
      return batch;
    });
    if (performance.now() - lastLog > 30_000) {
      lastLog = performance.now();
      const ended = batch.succeeded + batch.failed + batch.cancelled;
      console.error(
        `${((performance.now() - started) / 1000).toFixed(0)} s: ${ended}/${batch.total} ended, ETA ${batch.etaSeconds.toFixed(0)} s, gateway RSS ${peakRss.toFixed(0)} MB peak`,
      );
    }
  }
  const wallSeconds = (performance.now() - started) / 1000;
  clearInterval(sampler);
  const resultLines = batch.resultsUrl ? (await (await fetch(batch.resultsUrl)).text()).trim().split("\n").length : 0;
  const report = {
    items: ITEMS,
    steps: STEPS,
    size: 64,
    workers: { prior: 1, decoder: 1, upscale: 1 },
    manifestMb: +(manifest.byteLength / 2 ** 20).toFixed(2),
    state: BatchState[batch.state],
    succeeded: batch.succeeded,
    failed: batch.failed,
    cancelled: batch.cancelled,
    error: batch.error || undefined,
    resultsManifestLines: resultLines,
    submitSeconds: +submitSeconds.toFixed(2),
    wallSeconds: +wallSeconds.toFixed(1),
    itemsPerSecond: +(ITEMS / wallSeconds).toFixed(2),
    gatewayRssStartMb: +rssAtStart.toFixed(1),
    peakGatewayRssMb: +peakRss.toFixed(1),
    rssTargetMb: RSS_TARGET_MB,
    rssWithinTarget: peakRss < RSS_TARGET_MB,
    gatewayRestarts,
    cpus: cpus().length,
    loadAverage1m: { start: +load.start.toFixed(2), end: +loadavg()[0]!.toFixed(2) },
    rssSeries,
  };
  await mkdir(path.dirname(OUT), { recursive: true });
  await writeFile(OUT, JSON.stringify(report, null, 2) + "\n");
  console.log(JSON.stringify({ ...report, rssSeries: `${rssSeries.length} samples in ${OUT}` }, null, 2));
  if (batch.state !== BatchState.COMPLETED || batch.failed > 0) process.exitCode = 1;
} finally {
  client.close();
  await farm.stop();
}
