// What one worker holds under a burst: 30 one-image 64 px jobs against a farm with ONE decoder worker
// (UNCLIP_MAX_BATCH 8), sampling the pool-decoder consumer every 100 ms. Before bounded prefetch the worker held
// (num_ack_pending) nearly the whole burst; now it may hold at most its batch plus UNCLIP_PREFETCH.
// Usage: npm run prefetch-burst -w @unclip/bench
import { fileURLToPath } from "node:url";
import { UnclipClient } from "@unclip/cli";
import { startFarmStack } from "@unclip/devstack";
import { connectFarm, poolBacklog } from "@unclip/core";
import { create, GenerateRequestSchema, JobState, SamplingOptionsSchema } from "@unclip/protocol";

const BUNDLE = fileURLToPath(new URL("../models/tiny-random/", import.meta.url));
const JOBS = 30;
const farm = await startFarmStack({
  bundle: BUNDLE,
  upscalerBundle: BUNDLE,
  serviceEnv: { "decoder-worker": { UNCLIP_MAX_BATCH: "8" } },
});
const conn = await connectFarm(farm.nats.url, "prefetch-burst");
const client = new UnclipClient(farm.grpcAddress);
try {
  const samples: { pending: number; inFlight: number }[] = [];
  let sampling = true;
  const sampler = (async () => {
    while (sampling) {
      samples.push(await poolBacklog(conn.jsm, "decoder"));
      await new Promise((r) => setTimeout(r, 100));
    }
  })();
  const jobs = Array.from({ length: JOBS }, async (_, i) => {
    const req = create(GenerateRequestSchema, {
      prompt: "a red circle on a blue background",
      size: 64,
      seed: BigInt(i + 1),
      sampling: create(SamplingOptionsSchema, { priorSteps: 4, decoderSteps: 150 }),
    });
    for await (const e of client.generate(req)) {
      if (e.event.case === "completed" && e.event.value.state === JobState.SUCCEEDED) return;
      if (e.event.case === "failed" || e.event.case === "cancelled") throw new Error(e.event.value.error);
    }
  });
  await Promise.all(jobs);
  sampling = false;
  await sampler;
  const maxHeld = Math.max(...samples.map((s) => s.inFlight));
  const maxPending = Math.max(...samples.map((s) => s.pending));
  console.log(
    JSON.stringify({
      jobs: JOBS,
      maxBatch: 8,
      samples: samples.length,
      maxAckPending: maxHeld,
      maxPending,
      series: samples.map((s) => `${s.pending}/${s.inFlight}`).join(" "),
    }),
  );
} finally {
  client.close();
  await conn.nc.close();
  await farm.stop();
}
