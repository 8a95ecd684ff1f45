import { createHash } from "node:crypto";
import { createReadStream } from "node:fs";
import { readFile } from "node:fs/promises";
import path from "node:path";

/**
 * A model bundle's manifest.json. One schema serves the project's own bundles and upscaler-only bundles; each
 * worker requires the sections of the stages it runs. Paths are relative to the bundle directory.
 */
export interface BundleManifest {
  name: string;
  version: string;
  description?: string;
  /** Every file of the bundle with its sha256 (hex); loading fails when one does not match. */
  files: Record<string, string>;
  tokenizer?: TokenizerSection;
  clip?: ClipSection;
  prior?: PriorSection;
  decoder?: DecoderSection;
  upscaler?: UpscalerSection;
}

export interface TokenizerSection {
  /** A Hugging Face tokenizer.json. */
  file: string;
  /** Sequence length L of input_ids; shorter prompts are padded with padId, longer ones refused. */
  maxLength: number;
  padId: number;
}

export interface ClipSection {
  /** input_ids int64 [n,L] -> text_embeds [n,D], last_hidden_state [n,L,H] */
  textEncoder: string;
  /** pixel_values [n,3,S,S] (normalised with imageMean/imageStd) -> image_embeds [n,D] */
  imageEncoder?: string;
  embedDim: number;
  hiddenDim: number;
  imageSize: number;
  imageMean: [number, number, number];
  imageStd: [number, number, number];
}

export type Prediction = "epsilon" | "sample";
export type VarianceType = "fixed_small_log" | "learned_range";
export type SamplerName = "ddpm" | "ddim";

export interface SchedulerSection {
  schedule: "squaredcos_cap_v2";
  trainTimesteps: number;
  prediction: Prediction;
  variance: VarianceType;
  /** x0 estimates are clamped to [-clipSample, clipSample]. */
  clipSample: number;
}

export interface DiffusionDefaults {
  defaultSteps: number;
  defaultGuidance: number;
  defaultSampler: SamplerName;
}

export interface PriorSection extends DiffusionDefaults {
  /** hidden_states [n,D], timestep int64 [n], proj_embedding [n,D], encoder_hidden_states [n,L,H], attention_mask bool [n,L] -> predicted_image_embedding [n,D] */
  model: string;
  /** JSON file with {"mean": number[D], "std": number[D]}: the prior works on (embedding - mean) / std. */
  embeddingStats: string;
  scheduler: SchedulerSection;
}

export interface DecoderSection extends DiffusionDefaults {
  /** sample [n,C,S,S], timestep int64 [n], image_embeds [n,D] -> out_sample [n,3 or 6,S,S] */
  model: string;
  /** 3 for a plain decoder, 7 (x_t, masked image, mask) for one that also inpaints. */
  inChannels: 3 | 7;
  /** 6 when the model predicts ε and the learned-range variance interpolation. */
  outChannels: 3 | 6;
  size: number;
  embedDim: number;
  scheduler: SchedulerSection;
}

export interface UpscalerSection {
  /** image [n,3,h,w] in inputRange -> upscaled [n,3,scale*h,scale*w] in the same range */
  model: string;
  scale: number;
  inputRange: [number, number];
}

export class BundleError extends Error {
  override name = "BundleError";
  constructor(
    message: string,
    readonly bundleDir: string,
    options?: ErrorOptions,
  ) {
    super(`model bundle ${bundleDir}: ${message}`, options);
  }
}

export type BundleSection = "tokenizer" | "clip" | "prior" | "decoder" | "upscaler";

/** Reads and checks a manifest: the requested sections exist and every listed file has its recorded sha256. */
export async function readManifest(bundleDir: string, require: readonly BundleSection[] = []): Promise<BundleManifest> {
  let manifest: BundleManifest;
  try {
    manifest = JSON.parse(await readFile(path.join(bundleDir, "manifest.json"), "utf8")) as BundleManifest;
  } catch (cause) {
    throw new BundleError(`cannot read manifest.json (${(cause as Error).message})`, bundleDir, { cause });
  }
  if (!manifest.name || !manifest.version || typeof manifest.files !== "object") {
    throw new BundleError("manifest.json needs name, version and files", bundleDir);
  }
  for (const section of require) {
    if (!manifest[section]) throw new BundleError(`manifest.json has no "${section}" section, which this worker needs`, bundleDir);
  }
  await Promise.all(
    Object.entries(manifest.files).map(async ([file, expected]) => {
      const actual = await sha256File(path.join(bundleDir, file)).catch((cause: Error) => {
        throw new BundleError(`cannot read ${file} (${cause.message})`, bundleDir, { cause });
      });
      if (actual !== expected) throw new BundleError(`${file} has sha256 ${actual}, manifest says ${expected}`, bundleDir);
    }),
  );
  return manifest;
}

/** Resolves a file named in the manifest, refusing names that are not listed (and so not hash-checked). */
export function bundleFile(bundleDir: string, manifest: BundleManifest, file: string): string {
  if (!(file in manifest.files)) throw new BundleError(`${file} is used but not listed in files`, bundleDir);
  return path.join(bundleDir, file);
}

export function sha256File(file: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const hash = createHash("sha256");
    createReadStream(file)
      .on("data", (chunk) => hash.update(chunk))
      .on("error", reject)
      .on("end", () => resolve(hash.digest("hex")));
  });
}
