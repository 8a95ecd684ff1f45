import { FarmError } from "@unclip/core";
import { Stage, type OutputOptions, type SamplingOptions } from "@unclip/protocol";
import sharp, { type Metadata } from "sharp";
import { PixelBudget } from "./pixel-budget.js";
import { checkPromptTokens } from "./prompt-tokens.js";

export const MAX_PROMPT_CHARS = 500;
export const MAX_IMAGES = 8;
export const SIZES = [64, 256, 1024] as const;
export const MAX_UPLOAD_BYTES = 16 * 1024 * 1024;
export const MIN_UPLOAD_SIDE = 8;
export const MAX_UPLOAD_SIDE = 4096;
/** The most pixels an upload may decode to; libvips refuses more before decoding (decompression bombs). */
export const MAX_UPLOAD_PIXELS = MAX_UPLOAD_SIDE * MAX_UPLOAD_SIDE;
/** The longest presigned URL lifetime any farm allows (24 h); UNCLIP_URL_TTL_MAX_S sets a farm's own, up to this. */
export const MAX_URL_TTL_S = 24 * 3600;
const DEFAULT_URL_TTL_S = 3600;

/** The URL lifetime of a request that does not ask for one, and of GetJob and WatchJob: 1 h, or the cap if shorter. */
export const defaultUrlTtl = (urlTtlMaxS: number): number => Math.min(DEFAULT_URL_TTL_S, urlTtlMaxS);

/** The request fields every kind of job shares, validated, with defaults applied. */
export interface CommonParams {
  numImages: number;
  size: number;
  seed: bigint;
  sampling: { priorSteps: number; decoderSteps: number; priorGuidance: number; decoderGuidance: number; sampler: string };
  urlTtlSeconds: number;
  includeBytes: boolean;
}

/**
 * Invisible characters: format characters (Unicode category Cf: zero-width spaces and joiners, bidi overrides, BOM)
 * and whitespace. A prompt made only of these is empty to the model.
 */
const INVISIBLE = /[\p{Cf}\s]/gu;
/** C0 controls other than tab, LF and CR; DEL; C1 controls. */
const CONTROL = /[\u0000-\u0008\u000B\u000C\u000E-\u001F\u007F-\u009F]/;

export function validatePrompt(prompt: string, field = "prompt"): string {
  // protobuf decoding replaces invalid UTF-8 sequences with U+FFFD, so the replacement character marks bad bytes.
  if (prompt.includes("\uFFFD")) throw FarmError.invalid(`${field} is not valid UTF-8`);
  const trimmed = prompt.trim();
  if (trimmed.replace(INVISIBLE, "").length === 0) {
    throw FarmError.invalid(`${field} is empty (or only invisible characters): describe the image you want`);
  }
  const chars = [...trimmed].length;
  if (chars > MAX_PROMPT_CHARS) throw FarmError.invalid(`${field} has ${chars} characters; the limit is ${MAX_PROMPT_CHARS}`);
  if (CONTROL.test(trimmed)) throw FarmError.invalid(`${field} contains control characters`);
  checkPromptTokens(trimmed, field);
  return trimmed;
}

export function validateCommon(
  req: {
    numImages: number;
    size: number;
    seed: bigint;
    sampling?: SamplingOptions;
    output?: OutputOptions;
  },
  urlTtlMaxS = MAX_URL_TTL_S,
): CommonParams {
  const numImages = req.numImages === 0 ? 1 : req.numImages;
  if (numImages > MAX_IMAGES) throw FarmError.invalid(`num_images is ${numImages}; ask for 1 to ${MAX_IMAGES} images`);
  const size = req.size === 0 ? 1024 : req.size;
  if (!(SIZES as readonly number[]).includes(size)) throw FarmError.invalid(`size ${size} is not offered; choose 64, 256 or 1024`);
  const s = req.sampling;
  const steps = (v: number | undefined, name: string) => {
    const n = v ?? 0;
    if (n > 1000) throw FarmError.invalid(`${name} is ${n}; use 1 to 1000 steps (0 = the model's default)`);
    return n;
  };
  const guidance = (v: number | undefined, name: string) => {
    const g = v ?? 0;
    if (!Number.isFinite(g) || g < 0 || (g > 0 && g < 1) || g > 50) {
      throw FarmError.invalid(`${name} is ${g}; use a guidance scale from 1 to 50 (0 = the model's default)`);
    }
    return g;
  };
  const sampler = (s?.sampler ?? "").toLowerCase();
  if (sampler !== "" && sampler !== "ddpm" && sampler !== "ddim") {
    throw FarmError.invalid(`sampler "${s?.sampler}" is unknown; use "ddpm" or "ddim"`);
  }
  const ttl = req.output?.urlTtlSeconds || defaultUrlTtl(urlTtlMaxS);
  if (ttl > urlTtlMaxS) throw FarmError.invalid(`url_ttl_seconds is ${ttl}; this farm's limit is ${urlTtlMaxS} s`);
  let seed = req.seed;
  if (seed === 0n)
    seed = BigInt.asUintN(63, BigInt(Math.floor(Math.random() * 2 ** 52)) * 2048n + BigInt(Math.floor(Math.random() * 2048)));
  return {
    numImages,
    size,
    seed,
    sampling: {
      priorSteps: steps(s?.priorSteps, "prior_steps"),
      decoderSteps: steps(s?.decoderSteps, "decoder_steps"),
      priorGuidance: guidance(s?.priorGuidance, "prior_guidance"),
      decoderGuidance: guidance(s?.decoderGuidance, "decoder_guidance"),
      sampler,
    },
    urlTtlSeconds: ttl,
    includeBytes: req.output?.includeBytes ?? false,
  };
}

/** A caption that may be left empty (TransformImage's from_caption): "" when it holds only invisible characters. */
export function validateOptionalPrompt(prompt: string, field: string): string {
  if (!prompt.includes("\uFFFD") && prompt.trim().replace(INVISIBLE, "").length === 0) return "";
  return validatePrompt(prompt, field);
}

export const MIN_FRAMES = 2;
export const MAX_FRAMES = 16;
export const DEFAULT_FRAMES = 8;

/** An interpolation's frame count (0 = the default): each frame is one image of the job. */
export function validateFrames(frames: number): number {
  const n = frames === 0 ? DEFAULT_FRAMES : frames;
  if (n < MIN_FRAMES || n > MAX_FRAMES) {
    throw FarmError.invalid(`frames is ${n}; an interpolation has ${MIN_FRAMES} to ${MAX_FRAMES} frames (0 = ${DEFAULT_FRAMES})`);
  }
  return n;
}

/**
 * The sampling options an interpolation or transform may set: decoder steps and guidance. It runs no prior (its
 * embeddings come from the CLIP encoders) and always decodes with DDIM, so asking otherwise is refused, not ignored.
 */
export function validateManipulationSampling(sampling: SamplingOptions | undefined, what: string): void {
  if (sampling?.priorSteps) {
    throw FarmError.invalid(
      `prior_steps is ${sampling.priorSteps}, but ${what} run no prior (the CLIP encoders give their embeddings): leave it 0`,
    );
  }
  if (sampling?.priorGuidance) {
    throw FarmError.invalid(
      `prior_guidance is ${sampling.priorGuidance}, but ${what} run no prior (the CLIP encoders give their embeddings): leave it 0`,
    );
  }
  const sampler = (sampling?.sampler ?? "").toLowerCase();
  if (sampler !== "" && sampler !== "ddim") {
    throw FarmError.invalid(
      `sampler "${sampling?.sampler}" cannot decode ${what}: they use DDIM (eta 0) only; leave it empty or set "ddim"`,
    );
  }
}

/** A transform's strength, the slerp fraction towards the text diff: 0 to 1, unset = `fallback`. */
export function validateStrength(strength: number | undefined, fallback: number): number {
  if (strength === undefined) return fallback;
  if (!(strength >= 0 && strength <= 1)) throw FarmError.invalid(`strength is ${strength}; use 0 to 1 (unset = ${fallback})`);
  return strength;
}

/** Two full-size uploads decode at once (an edit's image and mask); more wait their turn. */
const decodeBudget = new PixelBudget(2 * MAX_UPLOAD_PIXELS);

/**
 * Checks an uploaded image: a PNG or JPEG within the size limits that decodes in full. The header is read first, so a
 * decompression bomb is refused by its stated dimensions before any pixel is decoded; then every pixel is decoded (as
 * strictly as the workers decode it, and still capped by libvips at MAX_UPLOAD_PIXELS), so a truncated file or data
 * that do not match the header are refused here rather than failing a worker. Returns its dimensions.
 */
export async function validateImage(bytes: Uint8Array, field: string): Promise<{ width: number; height: number }> {
  if (bytes.byteLength === 0) throw FarmError.invalid(`${field} is empty: upload a PNG or JPEG image`);
  if (bytes.byteLength > MAX_UPLOAD_BYTES) {
    throw FarmError.invalid(`${field} is ${bytes.byteLength} bytes; the limit is ${MAX_UPLOAD_BYTES} (16 MiB)`);
  }
  let meta: Metadata;
  try {
    // Reading the header decodes no pixels: stated dimensions of any size are read, then refused below.
    meta = await sharp(bytes, { limitInputPixels: false }).metadata();
  } catch {
    throw FarmError.invalid(`${field} is not a readable image: upload a PNG or JPEG`);
  }
  if (meta.format !== "png" && meta.format !== "jpeg") throw FarmError.invalid(`${field} is ${meta.format}; upload a PNG or JPEG`);
  const { width = 0, height = 0 } = meta;
  if (width < MIN_UPLOAD_SIDE || height < MIN_UPLOAD_SIDE || width > MAX_UPLOAD_SIDE || height > MAX_UPLOAD_SIDE) {
    throw FarmError.invalid(`${field} is ${width}x${height} px; sides must be ${MIN_UPLOAD_SIDE} to ${MAX_UPLOAD_SIDE} px`);
  }
  try {
    // Asking for the last row of a sequential read makes libvips decode every row at full resolution, in its thread
    // pool, while holding only a few rows. (stats() would decode too, but under concurrency it misses libpng's and
    // libjpeg's errors; a resize would let JPEG shrink on load.) failOn "warning" is sharp's default, which the workers
    // decode with: what passes here decodes there.
    await decodeBudget.run(width * height, () =>
      sharp(bytes, { failOn: "warning", limitInputPixels: MAX_UPLOAD_PIXELS, sequentialRead: true })
        .extract({ left: 0, top: height - 1, width, height: 1 })
        .raw()
        .toBuffer(),
    );
  } catch (err) {
    const reason = (err as Error).message.split("\n")[0];
    throw FarmError.invalid(`${field} is a damaged ${meta.format.toUpperCase()} (${reason}): upload an intact PNG or JPEG`);
  }
  return { width, height };
}

/** The stages after the 64 px decoder that reach the requested size. */
export function upscaleRoute(size: number): Stage[] {
  return size >= 1024 ? [Stage.UPSCALE_256, Stage.UPSCALE_1024] : size >= 256 ? [Stage.UPSCALE_256] : [];
}

const JOB_ID = /^[a-z0-9][a-z0-9-]{7,63}$/;

export function validateJobId(jobId: string): string {
  if (!jobId) throw FarmError.invalid("job_id is empty");
  if (!JOB_ID.test(jobId)) throw FarmError.invalid(`job_id ${JSON.stringify(jobId.slice(0, 80))} is not a job id of this farm`);
  return jobId;
}

/** request_id (idempotency key): optional, 1..128 printable characters. */
export function validateRequestId(requestId: string): string | undefined {
  if (requestId === "") return undefined;
  if ([...requestId].length > 128 || /[\u0000-\u001F\uFFFD]/.test(requestId)) {
    throw FarmError.invalid("request_id must be 1 to 128 printable characters of valid UTF-8");
  }
  return requestId;
}

const BATCH_ID = /^[A-Za-z0-9_-]{1,128}$/;

export function validateBatchId(batchId: string): string {
  if (!BATCH_ID.test(batchId)) {
    throw FarmError.invalid(`batch_id ${JSON.stringify(batchId.slice(0, 140))} must be 1 to 128 characters of A-Z a-z 0-9 _ -`);
  }
  return batchId;
}
