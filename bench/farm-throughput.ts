// Farm throughput and latency against the in-process limit, measured in the same run.
// In-process: the prior and decoder pipelines called directly (no NATS, no S3, no gRPC), batches of 8.
// Farm: the same images as gRPC jobs through the gateway and the worker processes (64 px, so prior + decoder).
// The ratio farm / in-process is the cost of distribution on one machine; on a GPU cluster each pool scales apart.
import { fileURLToPath } from "node:url";
import { create, GenerateRequestSchema, SamplingOptionsSchema, JobState } from "@unclip/protocol";
import { UnclipClient } from "@unclip/cli";
import { startFarmStack } from "@unclip/devstack";
import { EmbeddingToImage, loadBundle, TextToEmbedding } from "@unclip/unclip";

const BUNDLE = process.env.BENCH_BUNDLE ?? fileURLToPath(new URL("../models/tiny-random/", import.meta.url));
const IMAGES = Number(process.env.BENCH_IMAGES ?? 64);
const STEPS = Number(process.env.BENCH_STEPS ?? 25);
const prompts = ["a red circle on blue", "a green star top left", "a large yellow square", "a purple heart on white"];

async function inProcess(): Promise<number> {
  const bundle = await loadBundle(BUNDLE, { sections: ["tokenizer", "clip", "prior", "decoder"] });
  const prior = new TextToEmbedding(bundle);
  const decoder = new EmbeddingToImage(bundle);
  const started = performance.now();
  for (let i = 0; i < IMAGES; i += 8) {
    const items = Array.from({ length: Math.min(8, IMAGES - i) }, (_, k) => ({
      prompt: prompts[(i + k) % prompts.length]!,
      seed: BigInt(i + k),
    }));
    const embeddings = await prior.run(items, { steps: STEPS });
    await decoder.run(
      embeddings.map((embedding, k) => ({ embedding, seed: items[k]!.seed })),
      { steps: STEPS },
    );
  }
  const seconds = (performance.now() - started) / 1000;
  await bundle.release();
  return IMAGES / seconds;
}

const request = (i: number, numImages: number) =>
  create(GenerateRequestSchema, {
    prompt: prompts[i % prompts.length]!,
    size: 64,
    numImages,
    seed: BigInt(i * 8 + 1),
    sampling: create(SamplingOptionsSchema, { priorSteps: STEPS, decoderSteps: STEPS }),
  });

async function finish(client: UnclipClient, req: ReturnType<typeof request>): Promise<number> {
  const started = performance.now();
  for await (const e of client.generate(req)) {
    if (e.event.case === "completed" && e.event.value.state === JobState.SUCCEEDED) return (performance.now() - started) / 1000;
    if (e.event.case === "failed" || e.event.case === "cancelled") throw new Error(`job ${e.jobId}: ${e.event.value.error}`);
  }
  throw new Error("stream ended early");
}

const baseline = await inProcess();
const farm = await startFarmStack({ bundle: BUNDLE, upscalerBundle: BUNDLE });
try {
  const client = new UnclipClient(farm.grpcAddress);
  await finish(client, request(0, 1)); // warm-up
  const latencies: number[] = [];
  for (let i = 0; i < 8; i++) latencies.push(await finish(client, request(i, 1)));
  latencies.sort((a, b) => a - b);
  const started = performance.now();
  await Promise.all(Array.from({ length: IMAGES }, (_, i) => finish(client, request(i, 1))));
  const farmRate = IMAGES / ((performance.now() - started) / 1000);
  client.close();
  console.log(`bundle ${BUNDLE}, ${IMAGES} images of 64 px, ${STEPS} prior + ${STEPS} decoder steps, worker batches up to 16 / 8`);
  console.log("| path | images/s | vs in-process |");
  console.log("|---|---|---|");
  console.log(`| in-process pipelines (batches of 8) | ${baseline.toFixed(2)} | 1.00 |`);
  console.log(`| farm: ${IMAGES} concurrent one-image jobs | ${farmRate.toFixed(2)} | ${(farmRate / baseline).toFixed(2)} |`);
  console.log(
    `\none-image job latency on an idle farm: p50 ${(latencies[4]! * 1000).toFixed(0)} ms, max ${(latencies[7]! * 1000).toFixed(0)} ms`,
  );
} finally {
  await farm.stop();
}
