import { afterAll, beforeAll, describe, expect, it } from "vitest";
import sharp from "sharp";
import type { ServiceError } from "@grpc/grpc-js";
import {
  create,
  InterpolateImagesRequestSchema,
  JobKind,
  JobState,
  SamplingOptionsSchema,
  Stage,
  TransformImageRequestSchema,
  type InterpolateImagesRequest,
  type Job,
  type TransformImageRequest,
} from "@unclip/protocol";
import { EmbeddingToImage, ImageToEmbedding, loadBundle } from "@unclip/unclip";
import { decodeImage, resizeImage } from "@unclip/unclip/image";
import { collect, fetchBytes, pngSize, startTestFarm, terminal, TINY_BUNDLE } from "./farm-fixture.js";

let env: Awaited<ReturnType<typeof startTestFarm>>;
let imageA: Buffer;
let imageB: Buffer;
beforeAll(async () => {
  env = await startTestFarm();
  imageA = await scene(`<rect width="64" height="64" fill="#1030c0"/><rect x="8" y="8" width="20" height="20" fill="#d02020"/>`);
  imageB = await scene(`<rect width="64" height="64" fill="#f5f5f5"/><circle cx="40" cy="40" r="14" fill="#20a030"/>`);
});
afterAll(async () => {
  await env?.stop();
});

async function scene(body: string): Promise<Buffer> {
  return sharp(Buffer.from(`<svg xmlns="http://www.w3.org/2000/svg" width="64" height="64">${body}</svg>`))
    .png()
    .toBuffer();
}

const STEPS = 4;
const sampling = create(SamplingOptionsSchema, { decoderSteps: STEPS });
type Fields<T> = Partial<Omit<T, "$typeName" | "$unknown">>;
const interpolate = (fields: Fields<InterpolateImagesRequest> = {}) =>
  collect(
    env.client.interpolateImages(create(InterpolateImagesRequestSchema, { imageA, imageB, size: 64, seed: 11n, sampling, ...fields })),
  );
const transform = (fields: Fields<TransformImageRequest> = {}) =>
  collect(
    env.client.transformImage(
      create(TransformImageRequestSchema, {
        image: imageA,
        toCaption: "blue",
        fromCaption: "red",
        size: 64,
        seed: 21n,
        sampling,
        ...fields,
      }),
    ),
  );

const succeeded = (events: Awaited<ReturnType<typeof interpolate>>): Job => {
  expect(events[0]!.event.case).toBe("queued");
  const job = terminal(events).value as Job;
  expect(job.state, job.error).toBe(JobState.SUCCEEDED);
  return job;
};
const pixels = async (png: Uint8Array) => new Uint8Array(await sharp(png).removeAlpha().raw().toBuffer());
const framePixels = (job: Job) => Promise.all(job.images.map(async (image) => pixels(await fetchBytes(image.url))));
const same = (a: Uint8Array, b: Uint8Array) => Buffer.from(a).equals(Buffer.from(b));

describe("InterpolateImages", () => {
  it("streams a job of `frames` images (8 by default) through interpolate-embed and the decoder, all from one seed", async () => {
    const job = succeeded(await interpolate());
    expect(job).toMatchObject({ kind: JobKind.INTERPOLATE, numImages: 8, size: 64, seed: 11n });
    expect(job.images.map((i) => i.index)).toEqual([0, 1, 2, 3, 4, 5, 6, 7]);
    expect(job.images.every((i) => i.seed === 11n)).toBe(true);
    expect(job.timings.filter((t) => t.index === 0).map((t) => t.stage)).toEqual([Stage.INTERPOLATE_EMBED, Stage.DECODER]);
    const frames = await framePixels(job);
    expect(same(frames[0]!, frames[7]!)).toBe(false);
    expect(await pngSize(await fetchBytes(job.images[3]!.url))).toEqual({ width: 64, height: 64 });
  });

  it("starts every frame from the same noise: between two copies of one image, every frame is the same", async () => {
    const job = succeeded(await interpolate({ imageB: imageA, frames: 3, seed: 5n }));
    const [first, ...rest] = await framePixels(job);
    for (const frame of rest) expect(same(frame, first!)).toBe(true);
  });

  it("with invert_sources, its end frames are the DDIM decodes of the sources' inversions", async () => {
    const job = succeeded(await interpolate({ frames: 4, invertSources: true }));
    // What the farm must have done, computed here with the same library and bundle: encode both sources, invert each
    // 64 px source under its own embedding, decode each latent with DDIM at guidance 1 and the job's steps.
    const bundle = await loadBundle(TINY_BUNDLE, { sections: ["clip", "decoder"] });
    try {
      const sources = [await decodeImage(imageA), await decodeImage(imageB)];
      const embeddings = await new ImageToEmbedding(bundle).run(sources);
      const decoder = new EmbeddingToImage(bundle);
      const small = await Promise.all(sources.map((s) => resizeImage(s, 64)));
      const latents = await decoder.invert(
        small.map((image, b) => ({ image, embedding: embeddings[b]! })),
        { steps: STEPS },
      );
      const expected = await decoder.run(
        latents.map((latent, b) => ({ embedding: embeddings[b]!, seed: 0n, latent })),
        { steps: STEPS, guidance: 1, sampler: "ddim" },
      );
      const frames = await framePixels(job);
      expect(same(frames[0]!, expected[0]!.data)).toBe(true);
      expect(same(frames[3]!, expected[1]!.data)).toBe(true);
      expect(same(frames[1]!, frames[0]!)).toBe(false);
    } finally {
      await bundle.release();
    }
  });

  it("follows the first call's job for a repeated request_id, and refuses the id with other parameters", async () => {
    const requestId = `interpolate-${Date.now()}`;
    const first = succeeded(await interpolate({ frames: 2, requestId }));
    const again = succeeded(await interpolate({ frames: 2, requestId }));
    expect(again.jobId).toBe(first.jobId);
    expect(again.images.map((i) => i.key)).toEqual(first.images.map((i) => i.key));
    await expect(interpolate({ frames: 3, requestId })).rejects.toMatchObject({
      code: 6,
      details: expect.stringMatching(/already used for job .* with other parameters/),
    } satisfies Partial<ServiceError>);
  });
});

describe("TransformImage", () => {
  it("streams a job through text-diff, the decoder and the upscaler; image i has seed + i", async () => {
    const job = succeeded(await transform({ numImages: 2, size: 256 }));
    expect(job).toMatchObject({ kind: JobKind.TRANSFORM, prompt: "blue", numImages: 2, size: 256 });
    expect(job.images.map((i) => [i.index, i.seed])).toEqual([
      [0, 21n],
      [1, 22n],
    ]);
    expect(job.timings.filter((t) => t.index === 1).map((t) => t.stage)).toEqual([Stage.TEXT_DIFF, Stage.DECODER, Stage.UPSCALE_256]);
    const [a, b] = await framePixels(job);
    expect(same(a!, b!)).toBe(false);
  });

  it("at strength 0 from the inverted source decodes exactly what an interpolation's first frame does", async () => {
    const transformed = succeeded(await transform({ strength: 0, invertSource: true, fromCaption: "" }));
    const interpolated = succeeded(await interpolate({ frames: 2, invertSources: true }));
    const [t] = await framePixels(transformed);
    const [first] = await framePixels(interpolated);
    expect(same(t!, first!)).toBe(true);
  });

  it("follows the first call's job for a repeated request_id, and refuses the id with other parameters", async () => {
    const requestId = `transform-${Date.now()}`;
    const first = succeeded(await transform({ requestId }));
    const again = succeeded(await transform({ requestId }));
    expect(again.jobId).toBe(first.jobId);
    await expect(transform({ requestId, strength: 0.7 })).rejects.toMatchObject({ code: 6 });
  });

  it("refuses captions that read the same, with INVALID_ARGUMENT", async () => {
    await expect(transform({ toCaption: "RED", fromCaption: "red" })).rejects.toMatchObject({
      code: 3,
      details: expect.stringMatching(/^to_caption "RED" and from_caption "red" read the same to the model/),
    });
  });
});
