import { readFile } from "node:fs/promises";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { credentials, makeGenericClientConstructor, status, type ServiceError } from "@grpc/grpc-js";
import type { UnclipClient } from "@unclip/cli";
import {
  create,
  BatchItemSchema,
  BatchState,
  CreateVariationsRequestSchema,
  EditImageRequestSchema,
  InterpolateImagesRequestSchema,
  JobState,
  OutputOptionsSchema,
  SamplingOptionsSchema,
  SubmitBatchRequestSchema,
  TransformImageRequestSchema,
  type BatchItem,
  type CreateVariationsRequest,
  type EditImageRequest,
  type InterpolateImagesRequest,
  type Job,
  type TransformImageRequest,
} from "@unclip/protocol";
import { collect, generateRequest, startTestFarm, terminal } from "./farm-fixture.js";
import { hostileImages, noisePng, type HostileImages } from "./hostile-images.js";

/**
 * Requests a stranger might send, each with the gRPC status and message it must get. The corpus is data: one row per
 * request. Then the same corpus is sent again and again in parallel while the gateway's memory is watched.
 */
let env: Awaited<ReturnType<typeof startTestFarm>>;
let img: HostileImages;
let batchId = "";
beforeAll(async () => {
  [env, img] = await Promise.all([startTestFarm(), hostileImages()]);
  batchId = `hostile-${Date.now()}`;
  await env.client.submitBatch(
    create(SubmitBatchRequestSchema, {
      batchId,
      items: [create(BatchItemSchema, { customId: "one", request: { case: "generate", value: generateRequest("a red circle") } })],
    }),
  );
});
afterAll(async () => {
  await env?.stop();
});

const MiB = 1024 * 1024;
const UNKNOWN_JOB = "00000000-0000-4000-8000-00000000beef";

interface BadRequest {
  name: string;
  call: (c: UnclipClient) => Promise<unknown>;
  code: status;
  /** What the message must say: it names the field or the limit, so a person knows what to change. */
  message: RegExp;
}

const sampling = (fields: Parameters<typeof create<typeof SamplingOptionsSchema>>[1]) =>
  create(SamplingOptionsSchema, { priorSteps: 6, decoderSteps: 6, ...fields });
const generate =
  (prompt: string, fields: Parameters<typeof generateRequest>[1] = {}) =>
  (c: UnclipClient) =>
    collect(c.generate(generateRequest(prompt, fields)));
const variations =
  (image: () => Uint8Array, fields: Partial<Omit<CreateVariationsRequest, "$typeName" | "image">> = {}) =>
  (c: UnclipClient) =>
    collect(c.createVariations(create(CreateVariationsRequestSchema, { image: image(), size: 64, seed: 1n, ...fields })));
const edit =
  (prompt: string, image: () => Uint8Array, mask: () => Uint8Array, fields: Partial<Omit<EditImageRequest, "$typeName">> = {}) =>
  (c: UnclipClient) =>
    collect(c.editImage(create(EditImageRequestSchema, { prompt, image: image(), mask: mask(), size: 64, seed: 1n, ...fields })));
const interpolate =
  (a: () => Uint8Array, b: () => Uint8Array, fields: Partial<Omit<InterpolateImagesRequest, "$typeName">> = {}) =>
  (c: UnclipClient) =>
    collect(
      c.interpolateImages(create(InterpolateImagesRequestSchema, { imageA: a(), imageB: b(), frames: 2, size: 64, seed: 1n, ...fields })),
    );
const transform =
  (to: string, from: string, image: () => Uint8Array, fields: Partial<Omit<TransformImageRequest, "$typeName">> = {}) =>
  (c: UnclipClient) =>
    collect(
      c.transformImage(
        create(TransformImageRequestSchema, { toCaption: to, fromCaption: from, image: image(), size: 64, seed: 1n, ...fields }),
      ),
    );
const item = (customId: string, prompt = "a red circle"): BatchItem =>
  create(BatchItemSchema, { customId, request: { case: "generate", value: generateRequest(prompt) } });
const submit =
  (id: string, items: BatchItem[] = [item("a")], manifestKey = "") =>
  (c: UnclipClient) =>
    c.submitBatch(create(SubmitBatchRequestSchema, { batchId: id, items, manifestKey }));
const words = (n: number) => new Array(n).fill("red").join(" ");
/** A PNG signature followed by zeros: only its length matters. */
const sized = (bytes: number) => () => Buffer.concat([Buffer.from("\x89PNG\r\n\x1a\n", "latin1"), Buffer.alloc(bytes - 8)]);

/** A GenerateRequest or GetJobRequest whose string field 1 is encoded from the given bytes (invalid UTF-8 here). */
function rawCall(method: "Generate" | "GetJob", field1: Buffer) {
  return async () => {
    const Raw = makeGenericClientConstructor(
      {
        call: {
          path: `/farm.v1.UnclipService/${method}`,
          requestStream: false,
          responseStream: method === "Generate",
          requestSerialize: (b: Buffer) => b,
          requestDeserialize: (b: Buffer) => b,
          responseSerialize: (b: Buffer) => b,
          responseDeserialize: (b: Buffer) => b,
        },
      },
      "UnclipService",
    );
    const raw = new Raw(env.farm.grpcAddress, credentials.createInsecure()) as unknown as {
      call(b: Buffer, cb?: (err: Error | null) => void): AsyncIterable<Buffer>;
      close(): void;
    };
    const body = Buffer.concat([Buffer.from([0x0a, field1.length]), field1]);
    try {
      if (method === "Generate") {
        for await (const _ of raw.call(body)) void _;
      } else {
        await new Promise<void>((resolve, reject) => raw.call(body, (err) => (err ? reject(err) : resolve())));
      }
    } finally {
      raw.close();
    }
  };
}

// One row per request, so the corpus reads as a table.
// prettier-ignore
const CORPUS: BadRequest[] = [
  // Generate: the prompt
  { name: "prompt of invalid UTF-8 bytes", call: rawCall("Generate", Buffer.from([0x61, 0xff, 0xfe, 0x62])), code: status.INVALID_ARGUMENT, message: /not valid UTF-8/ },
  { name: "prompt of an overlong UTF-8 encoding", call: rawCall("Generate", Buffer.from([0xc0, 0xaf])), code: status.INVALID_ARGUMENT, message: /not valid UTF-8/ },
  { name: "prompt of a lone surrogate (CESU)", call: rawCall("Generate", Buffer.from([0xed, 0xa0, 0x80])), code: status.INVALID_ARGUMENT, message: /not valid UTF-8/ },
  { name: "empty prompt", call: generate(""), code: status.INVALID_ARGUMENT, message: /^prompt is empty/ },
  { name: "whitespace-only prompt", call: generate(" \t\n\u00a0\u3000 "), code: status.INVALID_ARGUMENT, message: /^prompt is empty/ },
  { name: "zero-width-only prompt", call: generate("\u200b\u200c\u200d\u2060"), code: status.INVALID_ARGUMENT, message: /^prompt is empty \(or only invisible characters\)/ },
  { name: "byte-order-mark-only prompt", call: generate("\ufeff\ufeff"), code: status.INVALID_ARGUMENT, message: /^prompt is empty/ },
  { name: "RTL-override-only prompt", call: generate("\u202e\u202d\u2066\u2069\u202c"), code: status.INVALID_ARGUMENT, message: /^prompt is empty/ },
  { name: "prompt with a NUL", call: generate("a red\u0000circle"), code: status.INVALID_ARGUMENT, message: /^prompt contains control characters$/ },
  { name: "prompt with an escape sequence", call: generate("a red \u001b[31mcircle"), code: status.INVALID_ARGUMENT, message: /control characters/ },
  { name: "prompt with DEL", call: generate("a red\u007fcircle"), code: status.INVALID_ARGUMENT, message: /control characters/ },
  { name: "prompt with a C1 control", call: generate("a red\u0085circle"), code: status.INVALID_ARGUMENT, message: /control characters/ },
  { name: "10k-character prompt", call: generate("x".repeat(10_000)), code: status.INVALID_ARGUMENT, message: /^prompt has 10000 characters; the limit is 500$/ },
  { name: "501 emoji", call: generate("🟥".repeat(501)), code: status.INVALID_ARGUMENT, message: /501 characters/ },
  { name: "prompt over the token limit", call: generate(words(17)), code: status.INVALID_ARGUMENT, message: /^prompt is 17 tokens; this model reads at most 16/ },
  { name: "prompt far over the token limit", call: generate(words(120)), code: status.INVALID_ARGUMENT, message: /^prompt is 120 tokens; this model reads at most 16/ },
  // Generate: the numbers
  { name: "num_images 9", call: generate("a cat", { numImages: 9 }), code: status.INVALID_ARGUMENT, message: /^num_images is 9; ask for 1 to 8 images$/ },
  { name: "num_images 2^32-1", call: generate("a cat", { numImages: 2 ** 32 - 1 }), code: status.INVALID_ARGUMENT, message: /num_images is 4294967295/ },
  { name: "size 63", call: generate("a cat", { size: 63 }), code: status.INVALID_ARGUMENT, message: /^size 63 is not offered; choose 64, 256 or 1024$/ },
  { name: "size 2048", call: generate("a cat", { size: 2048 }), code: status.INVALID_ARGUMENT, message: /size 2048 is not offered/ },
  { name: "size 2^32-1", call: generate("a cat", { size: 2 ** 32 - 1 }), code: status.INVALID_ARGUMENT, message: /size 4294967295 is not offered/ },
  { name: "prior_steps 1001", call: generate("a cat", { sampling: sampling({ priorSteps: 1001 }) }), code: status.INVALID_ARGUMENT, message: /^prior_steps is 1001; use 1 to 1000 steps/ },
  { name: "decoder_steps 2^32-1", call: generate("a cat", { sampling: sampling({ decoderSteps: 2 ** 32 - 1 }) }), code: status.INVALID_ARGUMENT, message: /^decoder_steps is 4294967295/ },
  { name: "guidance NaN", call: generate("a cat", { sampling: sampling({ decoderGuidance: Number.NaN }) }), code: status.INVALID_ARGUMENT, message: /^decoder_guidance is NaN; use a guidance scale from 1 to 50/ },
  { name: "guidance Infinity", call: generate("a cat", { sampling: sampling({ priorGuidance: Number.POSITIVE_INFINITY }) }), code: status.INVALID_ARGUMENT, message: /^prior_guidance is Infinity/ },
  { name: "guidance -1", call: generate("a cat", { sampling: sampling({ priorGuidance: -1 }) }), code: status.INVALID_ARGUMENT, message: /^prior_guidance is -1/ },
  { name: "guidance 0.5", call: generate("a cat", { sampling: sampling({ decoderGuidance: 0.5 }) }), code: status.INVALID_ARGUMENT, message: /^decoder_guidance is 0.5/ },
  { name: "guidance 51", call: generate("a cat", { sampling: sampling({ decoderGuidance: 51 }) }), code: status.INVALID_ARGUMENT, message: /^decoder_guidance is 51/ },
  { name: "unknown sampler", call: generate("a cat", { sampling: sampling({ sampler: "euler_a" }) }), code: status.INVALID_ARGUMENT, message: /^sampler "euler_a" is unknown; use "ddpm" or "ddim"$/ },
  { name: "sampler of invisible characters", call: generate("a cat", { sampling: sampling({ sampler: "ddim\u200b" }) }), code: status.INVALID_ARGUMENT, message: /sampler "ddim\u200b" is unknown/ },
  { name: "url_ttl_seconds over the cap", call: generate("a cat", { output: create(OutputOptionsSchema, { urlTtlSeconds: 30 * 24 * 3600 }) }), code: status.INVALID_ARGUMENT, message: /^url_ttl_seconds is 2592000; .*limit is \d+/ },
  { name: "url_ttl_seconds 2^32-1", call: generate("a cat", { output: create(OutputOptionsSchema, { urlTtlSeconds: 2 ** 32 - 1 }) }), code: status.INVALID_ARGUMENT, message: /url_ttl_seconds is 4294967295/ },
  { name: "request_id of 129 characters", call: generate("a cat", { requestId: "r".repeat(129) }), code: status.INVALID_ARGUMENT, message: /^request_id must be 1 to 128 printable characters/ },
  { name: "request_id with a control character", call: generate("a cat", { requestId: "abc\u0007" }), code: status.INVALID_ARGUMENT, message: /^request_id must be/ },
  // CreateVariations: the upload
  { name: "no image", call: variations(() => new Uint8Array(0)), code: status.INVALID_ARGUMENT, message: /^image is empty: upload a PNG or JPEG image$/ },
  { name: "text instead of an image", call: variations(() => Buffer.from("GET / HTTP/1.1\r\n\r\n")), code: status.INVALID_ARGUMENT, message: /^image is not a readable image: upload a PNG or JPEG$/ },
  { name: "PNG signature only", call: variations(() => img.png.subarray(0, 8)), code: status.INVALID_ARGUMENT, message: /^image is not a readable image/ },
  { name: "truncated PNG", call: variations(() => img.truncatedPng), code: status.INVALID_ARGUMENT, message: /^image is a damaged PNG \(.+\): upload an intact PNG or JPEG$/ },
  { name: "PNG with corrupt pixel data (valid CRC)", call: variations(() => img.corruptIdat), code: status.INVALID_ARGUMENT, message: /^image is a damaged PNG/ },
  { name: "PNG with a wrong chunk CRC", call: variations(() => img.badCrc), code: status.INVALID_ARGUMENT, message: /^image is a damaged PNG/ },
  { name: "PNG header larger than its data", call: variations(() => img.headerLarger), code: status.INVALID_ARGUMENT, message: /^image is a damaged PNG/ },
  { name: "PNG header smaller than its data", call: variations(() => img.headerSmaller), code: status.INVALID_ARGUMENT, message: /^image is a damaged PNG/ },
  { name: "truncated JPEG", call: variations(() => img.truncatedJpeg), code: status.INVALID_ARGUMENT, message: /^image is a damaged JPEG/ },
  { name: "GIF", call: variations(() => img.gif), code: status.INVALID_ARGUMENT, message: /^image is gif; upload a PNG or JPEG$/ },
  { name: "WebP", call: variations(() => img.webp), code: status.INVALID_ARGUMENT, message: /^image is webp; upload a PNG or JPEG$/ },
  { name: "TIFF", call: variations(() => img.tiff), code: status.INVALID_ARGUMENT, message: /^image is tiff; upload a PNG or JPEG$/ },
  { name: "SVG of 100000 px", call: variations(() => img.svg), code: status.INVALID_ARGUMENT, message: /^image is svg; upload a PNG or JPEG$/ },
  { name: "BMP", call: variations(() => img.bmp), code: status.INVALID_ARGUMENT, message: /^image is not a readable image: upload a PNG or JPEG$/ },
  { name: "1x1 image", call: variations(() => img.onePixel), code: status.INVALID_ARGUMENT, message: /^image is 1x1 px; sides must be 8 to 4096 px$/ },
  { name: "7x64 image", call: variations(() => img.sevenPixels), code: status.INVALID_ARGUMENT, message: /^image is 7x64 px/ },
  { name: "5000x5000 header", call: variations(() => img.header5000), code: status.INVALID_ARGUMENT, message: /^image is 5000x5000 px; sides must be 8 to 4096 px$/ },
  { name: "PNG bomb: 20000x20000 header", call: variations(() => img.header20000), code: status.INVALID_ARGUMENT, message: /^image is 20000x20000 px/ },
  { name: "PNG bomb: 8192x8192 black", call: variations(() => img.bomb8192), code: status.INVALID_ARGUMENT, message: /^image is 8192x8192 px/ },
  { name: "4096x4096 PNG cut short", call: variations(() => img.truncated4096), code: status.INVALID_ARGUMENT, message: /^image is a damaged PNG/ },
  { name: "17 MiB upload", call: variations(sized(17 * MiB)), code: status.INVALID_ARGUMENT, message: /^image is 17825792 bytes; the limit is 16777216 \(16 MiB\)$/ },
  { name: "40 MiB request", call: variations(sized(40 * MiB)), code: status.RESOURCE_EXHAUSTED, message: /larger than max/ },
  { name: "good image, num_images 9", call: variations(() => img.png, { numImages: 9 }), code: status.INVALID_ARGUMENT, message: /^num_images is 9/ },
  { name: "good image, size 2048", call: variations(() => img.png, { size: 2048 }), code: status.INVALID_ARGUMENT, message: /^size 2048 is not offered/ },
  // EditImage
  { name: "edit: zero-width prompt", call: edit("\u200b", () => img.png, () => img.png), code: status.INVALID_ARGUMENT, message: /^prompt is empty/ },
  { name: "edit: prompt over the token limit", call: edit(words(30), () => img.png, () => img.png), code: status.INVALID_ARGUMENT, message: /^prompt is 30 tokens; this model reads at most 16/ },
  { name: "edit: no mask", call: edit("a cat", () => img.png, () => new Uint8Array(0)), code: status.INVALID_ARGUMENT, message: /^mask is empty/ },
  { name: "edit: truncated mask", call: edit("a cat", () => img.png, () => img.truncatedPng), code: status.INVALID_ARGUMENT, message: /^mask is a damaged PNG/ },
  { name: "edit: mask with a wrong header", call: edit("a cat", () => img.png, () => img.headerLarger), code: status.INVALID_ARGUMENT, message: /^mask is a damaged PNG/ },
  { name: "edit: WebP mask", call: edit("a cat", () => img.png, () => img.webp), code: status.INVALID_ARGUMENT, message: /^mask is webp/ },
  { name: "edit: mask of another aspect ratio", call: edit("a cat", () => img.png, () => img.widePng), code: status.INVALID_ARGUMENT, message: /^mask is 64x32 but image is 64x64: they need the same aspect ratio$/ },
  { name: "edit: bomb as the image", call: edit("a cat", () => img.header20000, () => img.png), code: status.INVALID_ARGUMENT, message: /^image is 20000x20000 px/ },
  { name: "edit: bomb as the mask", call: edit("a cat", () => img.png, () => img.bomb8192), code: status.INVALID_ARGUMENT, message: /^mask is 8192x8192 px/ },
  { name: "edit: 17 MiB mask", call: edit("a cat", () => img.png, sized(17 * MiB)), code: status.INVALID_ARGUMENT, message: /^mask is 17825792 bytes/ },
  // InterpolateImages
  { name: "interpolate: no image_b", call: interpolate(() => img.png, () => new Uint8Array(0)), code: status.INVALID_ARGUMENT, message: /^image_b is empty: upload a PNG or JPEG image$/ },
  { name: "interpolate: damaged image_a", call: interpolate(() => img.corruptIdat, () => img.png), code: status.INVALID_ARGUMENT, message: /^image_a is a damaged PNG/ },
  { name: "interpolate: bomb as image_b", call: interpolate(() => img.png, () => img.header20000), code: status.INVALID_ARGUMENT, message: /^image_b is 20000x20000 px/ },
  { name: "interpolate: WebP image_a", call: interpolate(() => img.webp, () => img.png), code: status.INVALID_ARGUMENT, message: /^image_a is webp; upload a PNG or JPEG$/ },
  { name: "interpolate: 1 frame", call: interpolate(() => img.png, () => img.png, { frames: 1 }), code: status.INVALID_ARGUMENT, message: /^frames is 1; an interpolation has 2 to 16 frames \(0 = 8\)$/ },
  { name: "interpolate: 17 frames", call: interpolate(() => img.png, () => img.png, { frames: 17 }), code: status.INVALID_ARGUMENT, message: /^frames is 17; an interpolation has 2 to 16 frames/ },
  { name: "interpolate: frames 2^32-1", call: interpolate(() => img.png, () => img.png, { frames: 2 ** 32 - 1 }), code: status.INVALID_ARGUMENT, message: /^frames is 4294967295/ },
  { name: "interpolate: size 2048", call: interpolate(() => img.png, () => img.png, { size: 2048 }), code: status.INVALID_ARGUMENT, message: /^size 2048 is not offered/ },
  { name: "interpolate: sampler ddpm", call: interpolate(() => img.png, () => img.png, { sampling: create(SamplingOptionsSchema, { sampler: "ddpm" }) }), code: status.INVALID_ARGUMENT, message: /^sampler "ddpm" cannot decode interpolations: they use DDIM \(eta 0\) only/ },
  { name: "interpolate: prior_steps set", call: interpolate(() => img.png, () => img.png, { sampling: sampling({}) }), code: status.INVALID_ARGUMENT, message: /^prior_steps is 6, but interpolations run no prior/ },
  { name: "interpolate: decoder_guidance 51", call: interpolate(() => img.png, () => img.png, { sampling: create(SamplingOptionsSchema, { decoderGuidance: 51 }) }), code: status.INVALID_ARGUMENT, message: /^decoder_guidance is 51/ },
  // TransformImage
  { name: "transform: empty to_caption", call: transform("", "red", () => img.png), code: status.INVALID_ARGUMENT, message: /^to_caption is empty/ },
  { name: "transform: to_caption over the token limit", call: transform(words(17), "", () => img.png), code: status.INVALID_ARGUMENT, message: /^to_caption is 17 tokens; this model reads at most 16/ },
  { name: "transform: from_caption with a NUL", call: transform("blue", "re\u0000d", () => img.png), code: status.INVALID_ARGUMENT, message: /^from_caption contains control characters$/ },
  { name: "transform: the same captions", call: transform("red", "red", () => img.png), code: status.INVALID_ARGUMENT, message: /^to_caption "red" and from_caption "red" read the same to the model, so there is no change to make/ },
  { name: "transform: captions that differ only in case", call: transform("Red", " red ", () => img.png), code: status.INVALID_ARGUMENT, message: /^to_caption "Red" and from_caption "red" read the same to the model/ },
  { name: "transform: strength 1.5", call: transform("blue", "red", () => img.png, { strength: 1.5 }), code: status.INVALID_ARGUMENT, message: /^strength is 1.5; use 0 to 1 \(unset = 0.6\)$/ },
  { name: "transform: strength -0.25", call: transform("blue", "red", () => img.png, { strength: -0.25 }), code: status.INVALID_ARGUMENT, message: /^strength is -0.25; use 0 to 1/ },
  { name: "transform: strength NaN", call: transform("blue", "red", () => img.png, { strength: Number.NaN }), code: status.INVALID_ARGUMENT, message: /^strength is NaN; use 0 to 1/ },
  { name: "transform: no image", call: transform("blue", "red", () => new Uint8Array(0)), code: status.INVALID_ARGUMENT, message: /^image is empty: upload a PNG or JPEG image$/ },
  { name: "transform: GIF", call: transform("blue", "red", () => img.gif), code: status.INVALID_ARGUMENT, message: /^image is gif; upload a PNG or JPEG$/ },
  { name: "transform: num_images 9", call: transform("blue", "red", () => img.png, { numImages: 9 }), code: status.INVALID_ARGUMENT, message: /^num_images is 9; ask for 1 to 8 images$/ },
  { name: "transform: 2 images from one inversion", call: transform("blue", "red", () => img.png, { numImages: 2, invertSource: true }), code: status.INVALID_ARGUMENT, message: /^num_images is 2, but with invert_source every image starts from the same inverted latent/ },
  { name: "transform: prior_guidance set", call: transform("blue", "red", () => img.png, { sampling: create(SamplingOptionsSchema, { priorGuidance: 2 }) }), code: status.INVALID_ARGUMENT, message: /^prior_guidance is 2, but transforms run no prior/ },
  // GetJob, WatchJob, CancelJob
  { name: "GetJob: empty id", call: (c) => c.getJob(""), code: status.INVALID_ARGUMENT, message: /^job_id is empty$/ },
  { name: "GetJob: path traversal", call: (c) => c.getJob("../../etc/passwd"), code: status.INVALID_ARGUMENT, message: /^job_id "\.\.\/\.\.\/etc\/passwd" is not a job id of this farm$/ },
  { name: "GetJob: KV wildcard", call: (c) => c.getJob("jobs.>"), code: status.INVALID_ARGUMENT, message: /is not a job id/ },
  { name: "GetJob: 1 MB id", call: (c) => c.getJob("a".repeat(MiB)), code: status.INVALID_ARGUMENT, message: /^job_id "a{80}" is not a job id/ },
  { name: "GetJob: unicode id", call: (c) => c.getJob("ジョブ-0000-0000-0000"), code: status.INVALID_ARGUMENT, message: /is not a job id/ },
  { name: "GetJob: invalid UTF-8 id", call: rawCall("GetJob", Buffer.from([0x30, 0x30, 0xff, 0x30, 0x30, 0x30, 0x30, 0x30, 0x30])), code: status.INVALID_ARGUMENT, message: /not valid UTF-8/ },
  { name: "GetJob: unknown id", call: (c) => c.getJob(UNKNOWN_JOB), code: status.NOT_FOUND, message: /does not exist/ },
  { name: "WatchJob: path traversal", call: (c) => collect(c.watchJob("../jobs")), code: status.INVALID_ARGUMENT, message: /is not a job id/ },
  { name: "WatchJob: newline in id", call: (c) => collect(c.watchJob("abcdefgh\nijkl")), code: status.INVALID_ARGUMENT, message: /^job_id "abcdefgh\\nijkl" is not a job id/ },
  { name: "WatchJob: unknown id", call: (c) => collect(c.watchJob(UNKNOWN_JOB)), code: status.NOT_FOUND, message: /does not exist/ },
  { name: "CancelJob: empty id", call: (c) => c.cancelJob(""), code: status.INVALID_ARGUMENT, message: /^job_id is empty$/ },
  { name: "CancelJob: 1 MB id", call: (c) => c.cancelJob("b".repeat(MiB)), code: status.INVALID_ARGUMENT, message: /is not a job id/ },
  { name: "CancelJob: unknown id", call: (c) => c.cancelJob(UNKNOWN_JOB), code: status.NOT_FOUND, message: /does not exist/ },
  // SubmitBatch, GetBatch, ListBatchItems, CancelBatch
  { name: "SubmitBatch: empty batch id", call: submit(""), code: status.INVALID_ARGUMENT, message: /^batch_id "" must be 1 to 128 characters of A-Z a-z 0-9 _ -$/ },
  { name: "SubmitBatch: path traversal id", call: submit("../../batches"), code: status.INVALID_ARGUMENT, message: /^batch_id "\.\.\/\.\.\/batches" must be/ },
  { name: "SubmitBatch: 129-character id", call: submit("b".repeat(129)), code: status.INVALID_ARGUMENT, message: /^batch_id "b{129}" must be/ },
  { name: "SubmitBatch: unicode id", call: submit("バッチ"), code: status.INVALID_ARGUMENT, message: /must be 1 to 128 characters/ },
  { name: "SubmitBatch: no items", call: submit("hostile-empty", []), code: status.INVALID_ARGUMENT, message: /^the batch is empty: give items or a manifest_key$/ },
  { name: "SubmitBatch: items and a manifest", call: submit("hostile-both", [item("a")], "manifests/x.jsonl"), code: status.INVALID_ARGUMENT, message: /^give items or manifest_key, not both$/ },
  { name: "SubmitBatch: missing manifest", call: submit("hostile-missing", [], "manifests/../../nothing.jsonl"), code: status.INVALID_ARGUMENT, message: /^manifest_key "manifests\/\.\.\/\.\.\/nothing\.jsonl" does not exist in the bucket$/ },
  { name: "SubmitBatch: 1001 items", call: submit("hostile-many", Array.from({ length: 1001 }, (_, i) => item(`i${i}`))), code: status.INVALID_ARGUMENT, message: /^1001 inline items; the limit is 1000/ },
  { name: "SubmitBatch: duplicate custom ids", call: submit("hostile-dup", [item("x"), item("x")]), code: status.INVALID_ARGUMENT, message: /^item 2: custom_id "x" appears twice$/ },
  { name: "SubmitBatch: empty custom id", call: submit("hostile-noid", [item("")]), code: status.INVALID_ARGUMENT, message: /^item 1: custom_id must be 1 to 256 characters$/ },
  { name: "SubmitBatch: 257-character custom id", call: submit("hostile-longid", [item("c".repeat(257))]), code: status.INVALID_ARGUMENT, message: /custom_id must be 1 to 256 characters/ },
  { name: "GetBatch: empty id", call: (c) => c.getBatch(""), code: status.INVALID_ARGUMENT, message: /^batch_id "" must be/ },
  { name: "GetBatch: path traversal", call: (c) => c.getBatch("../x"), code: status.INVALID_ARGUMENT, message: /must be 1 to 128 characters/ },
  { name: "GetBatch: unknown id", call: (c) => c.getBatch("no-such-batch"), code: status.NOT_FOUND, message: /^batch no-such-batch does not exist/ },
  { name: "ListBatchItems: unknown batch", call: (c) => c.listBatchItems("no-such-batch"), code: status.NOT_FOUND, message: /does not exist/ },
  { name: "ListBatchItems: page_size 1001", call: (c) => c.listBatchItems(batchId, { pageSize: 1001 }), code: status.INVALID_ARGUMENT, message: /^page_size is 1001; the limit is 1000$/ },
  { name: "ListBatchItems: page_size 2^32-1 (-1 as int32)", call: (c) => c.listBatchItems(batchId, { pageSize: 2 ** 32 - 1 }), code: status.INVALID_ARGUMENT, message: /^page_size is 4294967295/ },
  { name: "ListBatchItems: negative page token", call: (c) => c.listBatchItems(batchId, { pageToken: "-1" }), code: status.INVALID_ARGUMENT, message: /^page_token "-1" is not a token of this batch's pages$/ },
  { name: "ListBatchItems: page token past the end", call: (c) => c.listBatchItems(batchId, { pageToken: "99999" }), code: status.INVALID_ARGUMENT, message: /^page_token "99999"/ },
  { name: "ListBatchItems: garbage page token", call: (c) => c.listBatchItems(batchId, { pageToken: "eyJvZmZzZXQiOjF9" }), code: status.INVALID_ARGUMENT, message: /^page_token "eyJvZmZzZXQiOjF9"/ },
  { name: "ListBatchItems: fractional page token", call: (c) => c.listBatchItems(batchId, { pageToken: "0.5" }), code: status.INVALID_ARGUMENT, message: /^page_token "0.5"/ },
  { name: "CancelBatch: bad id", call: (c) => c.cancelBatch("x/y"), code: status.INVALID_ARGUMENT, message: /must be 1 to 128 characters/ },
  { name: "CancelBatch: unknown id", call: (c) => c.cancelBatch("no-such-batch"), code: status.NOT_FOUND, message: /does not exist/ },
];

async function outcome(req: BadRequest): Promise<{ code: number | "ok"; details: string }> {
  try {
    await req.call(env.client);
    return { code: "ok", details: "" };
  } catch (err) {
    const e = err as ServiceError;
    return { code: e.code, details: e.details };
  }
}

function vmRss(pid: number): Promise<{ rssMb: number; peakMb: number }> {
  return readFile(`/proc/${pid}/status`, "utf8").then((text) => {
    const kb = (field: string) => Number(new RegExp(`^${field}:\\s+(\\d+) kB`, "m").exec(text)![1]);
    return { rssMb: kb("VmRSS") / 1024, peakMb: kb("VmHWM") / 1024 };
  });
}

describe(`hostile input: ${CORPUS.length} bad requests, each answered with its status`, () => {
  it("has a corpus of at least 60 requests with unique names, covering every method", () => {
    expect(CORPUS.length).toBeGreaterThanOrEqual(60);
    expect(new Set(CORPUS.map((r) => r.name)).size).toBe(CORPUS.length);
  });

  for (const req of CORPUS) {
    it(`${req.name}: ${status[req.code]}`, async () => {
      const got = await outcome(req);
      expect(got.code === "ok" ? "ok" : status[got.code], got.details).toBe(status[req.code]);
      expect(got.details).toMatch(req.message);
      // Readable: one short line, no stack trace or internal error class.
      expect(got.details.length).toBeLessThan(300);
      expect(got.details).not.toMatch(/\n|\bat .*\.(ts|js):\d+|Error:|undefined|\[object /);
    });
  }

  it("keeps the gateway's memory bounded while the corpus is sent 3 times, 16 requests at a time", async () => {
    const pid = env.farm.gateway.current.child.pid!;
    const before = await vmRss(pid);
    const afterRound: number[] = [];
    const wrong: string[] = [];
    const started = Date.now();
    for (let round = 0; round < 3; round++) {
      const queue = [...CORPUS];
      await Promise.all(
        Array.from({ length: 16 }, async () => {
          for (let req = queue.shift(); req; req = queue.shift()) {
            const got = await outcome(req);
            if (got.code !== req.code) wrong.push(`${req.name}: ${got.code === "ok" ? "ok" : status[got.code]} ${got.details}`);
          }
        }),
      );
      afterRound.push(Math.round((await vmRss(pid)).rssMb));
    }
    const after = await vmRss(pid);
    const figures = {
      requests: 3 * CORPUS.length,
      seconds: (Date.now() - started) / 1000,
      rssBeforeMb: Math.round(before.rssMb),
      rssAfterEachRoundMb: afterRound,
      peakRssMb: Math.round(after.peakMb),
    };
    console.log(`gateway memory under abuse: ${JSON.stringify(figures)}`);
    expect(wrong).toEqual([]);
    // The stated bound: the gateway grows by at most 300 MB over three rounds of the corpus, its peak included.
    expect(after.rssMb - before.rssMb).toBeLessThan(300);
    expect(after.peakMb - before.rssMb).toBeLessThan(300);
  });

  it("accepts a 16 MiB upload (two in one edit) through the CLI's client", async () => {
    const png = await noisePng(2300, 2300, 3);
    expect(png.length).toBeGreaterThan(15 * MiB);
    expect(png.length).toBeLessThanOrEqual(16 * MiB);
    const events = await collect(
      env.client.editImage(
        create(EditImageRequestSchema, {
          prompt: "a red circle",
          image: png,
          mask: png,
          size: 64,
          seed: 5n,
          sampling: sampling({}),
        }),
      ),
    );
    expect(events[0]!.event.case).toBe("queued");
    expect((terminal(events).value as Job).state).toBe(JobState.SUCCEEDED);
  });

  it("checks batch items with the same rules: a bad item fails alone with the same message", async () => {
    const id = `hostile-items-${Date.now()}`;
    const bad = [
      item("zero-width", "\u200b\u200d"),
      item("too-many-tokens", words(17)),
      create(BatchItemSchema, {
        customId: "damaged-png",
        request: { case: "variations", value: create(CreateVariationsRequestSchema, { image: img.corruptIdat, size: 64 }) },
      }),
    ];
    await env.client.submitBatch(create(SubmitBatchRequestSchema, { batchId: id, items: [item("good"), ...bad] }));
    const deadline = Date.now() + 120_000;
    let batch = await env.client.getBatch(id);
    while (batch.state === BatchState.RUNNING && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 250));
      batch = await env.client.getBatch(id);
    }
    expect([batch.state, batch.succeeded, batch.failed]).toEqual([BatchState.COMPLETED, 1, 3]);
    const errors = Object.fromEntries((await env.client.listBatchItems(id)).items.map((r) => [r.customId, r.error]));
    expect(errors).toEqual({
      good: "",
      "zero-width": expect.stringMatching(/^prompt is empty \(or only invisible characters\)/),
      "too-many-tokens": expect.stringMatching(/^prompt is 17 tokens; this model reads at most 16/),
      "damaged-png": expect.stringMatching(/^image is a damaged PNG/),
    });
  });

  it("still serves a valid request after all of that, and no process restarted", async () => {
    const events = await collect(env.client.generate(generateRequest("\u200ba red circle \u202ewith text", { seed: 2n ** 64n - 1n })));
    const job = terminal(events).value as Job;
    expect(job.state).toBe(JobState.SUCCEEDED);
    expect(job.images[0]!.seed).toBe(2n ** 64n - 1n);
    for (const s of env.farm.services()) {
      expect(s.current.child.exitCode, s.name).toBeNull();
      expect(s.restarts, s.name).toBe(0);
    }
  });
});
