import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { JobState, Stage, type ImageRef, type Pool } from "@unclip/protocol";
import { collect, fetchBytes, generateRequest, pngSize, startTestFarm, terminal } from "./farm-fixture.js";

let env: Awaited<ReturnType<typeof startTestFarm>>;
beforeAll(async () => {
  env = await startTestFarm();
});
afterAll(async () => {
  await env?.stop();
});

describe("Generate through four processes", () => {
  it("streams queued, stage, step and preview events and ends with the completed job at 1024 px", async () => {
    const events = await collect(env.client.generate(generateRequest("a red circle on a blue background", { size: 1024 })));
    const cases = events.map((e) => e.event.case);
    expect(cases[0]).toBe("queued");
    expect(cases).toContain("stageStarted");
    expect(cases).toContain("step");
    expect(cases).toContain("preview");
    const end = terminal(events);
    expect(end.case).toBe("completed");
    const job = end.value as import("@unclip/protocol").Job;
    expect(job.state).toBe(JobState.SUCCEEDED);
    expect(job.images).toHaveLength(1);
    const image = job.images[0]!;
    expect(image.size).toBe(1024);
    expect(image.key).toBe(`renders/${job.jobId}/0/1024.png`);
    expect(await pngSize(await fetchBytes(image.url))).toEqual({ width: 1024, height: 1024 });
    const stages = job.timings.map((t) => t.stage);
    expect(stages).toEqual([Stage.PRIOR, Stage.DECODER, Stage.UPSCALE_256, Stage.UPSCALE_1024]);
    // Prior, decoder and upscale ran in processes of their pools (named <pool>-worker-<n>), each stage's in one of them.
    const ranOn = job.timings.map((t) => t.worker);
    const workersOf = (pool: Pool) => env.farm.workers(pool).map((w) => w.name);
    expect(workersOf("prior")).toContain(ranOn[0]);
    expect(workersOf("decoder")).toContain(ranOn[1]);
    expect(workersOf("upscale")).toContain(ranOn[2]);
    expect(workersOf("upscale")).toContain(ranOn[3]);
    const preview = events.find((e) => e.event.case === "preview")!.event.value as ImageRef;
    expect(preview.size).toBe(64);
    expect(await pngSize(await fetchBytes(preview.url))).toEqual({ width: 64, height: 64 });
  });

  it("stops the route at the requested size and returns bytes inline when asked", async () => {
    const events = await collect(
      env.client.generate(
        generateRequest("a green star", { size: 256, numImages: 2, output: { includeBytes: true, urlTtlSeconds: 60 } as never }),
      ),
    );
    const images = events.filter((e) => e.event.case === "image").map((e) => e.event.value as ImageRef);
    expect(images.map((i) => i.index).sort()).toEqual([0, 1]);
    for (const image of images) expect(await pngSize(image.png)).toEqual({ width: 256, height: 256 });
    const job = terminal(events).value as import("@unclip/protocol").Job;
    expect(job.state).toBe(JobState.SUCCEEDED);
    expect(job.timings.some((t) => t.stage === Stage.UPSCALE_1024)).toBe(false);
    expect(job.images.map((i) => i.seed)).toEqual([7n, 8n]);
  });

  it("renders an image the same whether it ran alone or inside a batch", async () => {
    // The decoders' batch-size histogram, read right before and after this test's own 4-image job: nothing else runs
    // in between, so the deltas are that job's decoder batches alone.
    const before = await decoderBatches();
    const batch = terminal(await collect(env.client.generate(generateRequest("a blue square top left", { numImages: 4, seed: 100n }))))
      .value as import("@unclip/protocol").Job;
    const after = await decoderBatches();
    const alone = terminal(await collect(env.client.generate(generateRequest("a blue square top left", { numImages: 1, seed: 102n }))))
      .value as import("@unclip/protocol").Job;
    expect(batch.state).toBe(JobState.SUCCEEDED);
    expect(alone.state).toBe(JobState.SUCCEEDED);
    const fromBatch = await fetchBytes(batch.images[2]!.url);
    const single = await fetchBytes(alone.images[0]!.url);
    expect(Buffer.from(single).equals(Buffer.from(fromBatch))).toBe(true);
    // and differs from its neighbours, so the comparison means something
    expect(Buffer.from(await fetchBytes(batch.images[1]!.url)).equals(Buffer.from(single))).toBe(false);
    // The four images really ran batched: the job's 4 decoder tasks went through fewer than 4 model batches, and at
    // least one of those batches held more than one task (it is not in the histogram's le="1" bucket).
    const tasks = after.tasks - before.tasks;
    const batches = after.batches - before.batches;
    const multiTaskBatches = batches - (after.singleTaskBatches - before.singleTaskBatches);
    expect(tasks).toBe(4);
    expect(batches).toBeLessThan(4);
    expect(multiTaskBatches).toBeGreaterThanOrEqual(1);
  });

  it("GetJob returns the finished job with fresh URLs, and WatchJob of an ended job ends at once", async () => {
    const job = terminal(await collect(env.client.generate(generateRequest("a yellow ring")))).value as import("@unclip/protocol").Job;
    const got = await env.client.getJob(job.jobId);
    expect(got.state).toBe(JobState.SUCCEEDED);
    expect(got.images[0]!.url).toMatch(/^http:\/\/127\.0\.0\.1:\d+\//);
    const watched = await collect(env.client.watchJob(job.jobId));
    expect(watched.map((e) => e.event.case)).toEqual(["completed"]);
  });
});

/** The decoder stage's unclip_batch_size histogram, summed over the decoder workers. */
async function decoderBatches(): Promise<{ tasks: number; batches: number; singleTaskBatches: number }> {
  const total = { tasks: 0, batches: 0, singleTaskBatches: 0 };
  for (const decoder of env.farm.workers("decoder")) {
    const text = await (await fetch(`http://127.0.0.1:${String(decoder.current.ready.metricsPort)}/metrics`)).text();
    const value = (series: RegExp) =>
      text
        .split("\n")
        .filter((line) => series.test(line) && line.includes('stage="decoder"'))
        .reduce((sum, line) => sum + Number(line.slice(line.lastIndexOf(" ") + 1)), 0);
    total.tasks += value(/^unclip_batch_size_sum\{/);
    total.batches += value(/^unclip_batch_size_count\{/);
    total.singleTaskBatches += value(/^unclip_batch_size_bucket\{.*le="1"/);
  }
  return total;
}
