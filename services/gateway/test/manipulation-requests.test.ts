import { afterEach, beforeAll, describe, expect, it } from "vitest";
import { fileURLToPath } from "node:url";
import sharp from "sharp";
import type { FarmConnection } from "@unclip/core";
import {
  create,
  fromBinary,
  InterpolateImagesRequestSchema,
  JobKind,
  JobParamsSchema,
  SamplingOptionsSchema,
  Stage,
  StageTaskSchema,
  TransformImageRequestSchema,
  type InterpolateImagesRequest,
  type TransformImageRequest,
} from "@unclip/protocol";
import { loadBundleTokenizer } from "@unclip/unclip/tokenizer";
import { publishTasks } from "../src/job-admission.js";
import { prepareInterpolate, prepareTransform } from "../src/job-requests.js";
import { setPromptTokenizer } from "../src/prompt-tokens.js";

const TINY_BUNDLE = fileURLToPath(new URL("../../../models/tiny-random/", import.meta.url));

let png: Uint8Array;
beforeAll(async () => {
  png = await sharp({ create: { width: 16, height: 16, channels: 3, background: "#c02020" } })
    .png()
    .toBuffer();
});
afterEach(() => setPromptTokenizer(undefined));

type Fields<T> = Partial<Omit<T, "$typeName" | "$unknown">>;
const interpolate = (fields: Fields<InterpolateImagesRequest> = {}) =>
  prepareInterpolate(create(InterpolateImagesRequestSchema, { imageA: png, imageB: png, ...fields }));
const transform = (fields: Fields<TransformImageRequest> = {}) =>
  prepareTransform(create(TransformImageRequestSchema, { image: png, toCaption: "blue", fromCaption: "red", ...fields }));

describe("InterpolateImages requests", () => {
  it("default to 8 frames, each one image of the job, routed through interpolate-embed", async () => {
    const a = await interpolate({ size: 64 });
    expect(a).toMatchObject({ kind: JobKind.INTERPOLATE, prompt: "", route: [Stage.INTERPOLATE_EMBED, Stage.DECODER] });
    expect(a.params.numImages).toBe(8);
    expect(a.manipulation).toEqual({ sourceB: png, invertSources: false });
    expect((await interpolate({ frames: 16, invertSources: true })).params.numImages).toBe(16);
    expect((await interpolate({ frames: 2, size: 1024 })).route).toEqual([
      Stage.INTERPOLATE_EMBED,
      Stage.DECODER,
      Stage.UPSCALE_256,
      Stage.UPSCALE_1024,
    ]);
  });

  it("refuse frames out of range, missing images and sampling they cannot honour", async () => {
    await expect(interpolate({ frames: 1 })).rejects.toThrow(/^frames is 1; an interpolation has 2 to 16 frames \(0 = 8\)$/);
    await expect(interpolate({ frames: 17 })).rejects.toThrow(/^frames is 17/);
    await expect(interpolate({ imageB: new Uint8Array() })).rejects.toThrow(/^image_b is empty/);
    await expect(interpolate({ sampling: create(SamplingOptionsSchema, { sampler: "ddpm" }) })).rejects.toThrow(/use DDIM/);
    await expect(interpolate({ sampling: create(SamplingOptionsSchema, { priorSteps: 3 }) })).rejects.toThrow(/run no prior/);
    await expect(interpolate({ sampling: create(SamplingOptionsSchema, { sampler: "DDIM", decoderSteps: 10 }) })).resolves.toBeDefined();
  });

  it("give every frame's task the job's seed (one starting noise), where other jobs' image i has seed + i", async () => {
    const published: { subject: string; seed: bigint; index: number; id: string }[] = [];
    const conn = {
      js: {
        publish: async (subject: string, data: Uint8Array, opts: { msgID: string }) => {
          const task = fromBinary(StageTaskSchema, data);
          published.push({ subject, seed: task.seed, index: task.index, id: opts.msgID });
        },
      },
    } as unknown as FarmConnection;
    const template = (kind: JobKind) =>
      create(StageTaskSchema, {
        jobId: "job-1",
        seed: 40n,
        route: [Stage.INTERPOLATE_EMBED, Stage.DECODER],
        params: create(JobParamsSchema, { kind, numImages: 3 }),
      });
    await publishTasks(conn, template(JobKind.INTERPOLATE));
    expect(published.map((p) => [p.subject, p.index, p.seed, p.id])).toEqual([
      ["farm.tasks.prior", 0, 40n, "job-1.0.interpolate-embed"],
      ["farm.tasks.prior", 1, 40n, "job-1.1.interpolate-embed"],
      ["farm.tasks.prior", 2, 40n, "job-1.2.interpolate-embed"],
    ]);
    published.length = 0;
    await publishTasks(conn, template(JobKind.TRANSFORM));
    expect(published.map((p) => p.seed)).toEqual([40n, 41n, 42n]);
  });
});

describe("TransformImage requests", () => {
  it("tell an unset strength (the default, 0.6) from an explicit 0, and default to no inversion", async () => {
    const a = await transform({ size: 256 });
    expect(a).toMatchObject({ kind: JobKind.TRANSFORM, prompt: "blue", route: [Stage.TEXT_DIFF, Stage.DECODER, Stage.UPSCALE_256] });
    expect(a.manipulation).toEqual({ invertSources: false, fromPrompt: "red", strength: 0.6 });
    expect((await transform({ strength: 0 })).manipulation?.strength).toBe(0);
    expect((await transform({ strength: 1, invertSource: true })).manipulation).toMatchObject({ strength: 1, invertSources: true });
  });

  it("take an empty or invisible from_caption as the empty caption", async () => {
    expect((await transform({ fromCaption: "" })).manipulation?.fromPrompt).toBe("");
    expect((await transform({ fromCaption: " \u200b " })).manipulation?.fromPrompt).toBe("");
  });

  it("refuse strengths outside 0..1, a missing to_caption and several images from one inversion", async () => {
    for (const strength of [-0.1, 1.5, Number.NaN, Number.POSITIVE_INFINITY]) {
      await expect(transform({ strength }), String(strength)).rejects.toThrow(/^strength is .*; use 0 to 1 \(unset = 0.6\)$/);
    }
    await expect(transform({ toCaption: "" })).rejects.toThrow(/^to_caption is empty/);
    await expect(transform({ numImages: 3, invertSource: true })).rejects.toThrow(/^num_images is 3, but with invert_source/);
    await expect(transform({ numImages: 3 })).resolves.toMatchObject({ params: { numImages: 3 } });
  });

  it("refuse captions that read the same: the same text, or with the bundle's tokenizer the same token ids", async () => {
    await expect(transform({ toCaption: "red", fromCaption: " red " })).rejects.toThrow(/read the same to the model/);
    await expect(transform({ toCaption: "Red", fromCaption: "red" })).resolves.toBeDefined();
    setPromptTokenizer(await loadBundleTokenizer(TINY_BUNDLE));
    await expect(transform({ toCaption: "Red", fromCaption: "red" })).rejects.toThrow(
      /^to_caption "Red" and from_caption "red" read the same to the model, so there is no change to make/,
    );
    await expect(transform({ toCaption: "blue", fromCaption: "red" })).resolves.toBeDefined();
  });
});
