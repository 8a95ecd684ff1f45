import { createHash } from "node:crypto";
import { readFile } from "node:fs/promises";
import path from "node:path";
import { UpscalerError } from "./upscaler-error.js";

/**
 * The part of the bundle manifest (packages/unclip/src/manifest.ts) an upscaler bundle uses. Declared here so the
 * upscale worker does not load the diffusion pipelines of @unclip/unclip.
 */
export interface UpscalerManifest {
  name: string;
  version: string;
  /** Every file of the bundle with its sha256 (hex). */
  files: Record<string, string>;
  upscaler: {
    /** image [n,3,h,w] in inputRange -> upscaled [n,3,scale*h,scale*w] in the same range */
    model: string;
    scale: number;
    inputRange: [number, number];
    /** A model per square input side ("64": the 64 -> 256 model), for bundles trained pass by pass; `model` runs the rest. */
    bySide?: Record<string, string>;
    /** Names of the decoder bundles this upscaler was made for; absent or empty: a generic upscaler, for any images. */
    decoders?: string[];
    /** The bundle's own settings, used unless the worker's configuration sets them (UNCLIP_UPSCALE_TILE, …). */
    tileSize?: number;
    backProjection?: number;
  };
}

export async function sha256(file: string): Promise<string> {
  return createHash("sha256")
    .update(await readFile(file))
    .digest("hex");
}

/** Reads manifest.json of an upscaler bundle and checks it names an upscaler model and every file has its sha256. */
export async function readUpscalerManifest(bundleDir: string): Promise<UpscalerManifest> {
  const fail = (message: string, cause?: unknown) => new UpscalerError(`upscaler bundle ${bundleDir}: ${message}`, { cause });
  let manifest: UpscalerManifest;
  try {
    manifest = JSON.parse(await readFile(path.join(bundleDir, "manifest.json"), "utf8")) as UpscalerManifest;
  } catch (cause) {
    throw fail(`cannot read manifest.json (${(cause as Error).message})`, cause);
  }
  const { upscaler } = manifest;
  if (!manifest.name || !manifest.version || typeof manifest.files !== "object") throw fail("manifest.json needs name, version and files");
  if (!upscaler || !Number.isInteger(upscaler.scale) || upscaler.scale < 1 || upscaler.inputRange?.length !== 2) {
    throw fail('manifest.json needs an "upscaler" section with model, scale and inputRange');
  }
  const bySide = upscaler.bySide ?? {};
  if (typeof bySide !== "object" || Array.isArray(bySide)) throw fail('"upscaler.bySide" must map input sides to model files');
  for (const side of Object.keys(bySide)) {
    if (!/^[1-9]\d*$/.test(side)) throw fail(`"upscaler.bySide" key "${side}" is not an input side in pixels`);
  }
  if (
    upscaler.decoders !== undefined &&
    !(Array.isArray(upscaler.decoders) && upscaler.decoders.every((d) => typeof d === "string" && d))
  ) {
    throw fail('"upscaler.decoders" must be a list of decoder bundle names');
  }
  if (upscaler.tileSize !== undefined && !(Number.isInteger(upscaler.tileSize) && upscaler.tileSize >= 16)) {
    throw fail(`"upscaler.tileSize" ${upscaler.tileSize} is not an integer of at least 16`);
  }
  if (
    upscaler.backProjection !== undefined &&
    !(Number.isInteger(upscaler.backProjection) && upscaler.backProjection >= 0 && upscaler.backProjection <= 10)
  ) {
    throw fail(`"upscaler.backProjection" ${upscaler.backProjection} is not an integer from 0 to 10`);
  }
  for (const model of [upscaler.model, ...Object.values(bySide)]) {
    if (!(model in manifest.files)) throw fail(`${model} is used but not listed in files`);
  }
  for (const [file, expected] of Object.entries(manifest.files)) {
    const actual = await sha256(path.join(bundleDir, file)).catch((cause: Error) => {
      throw fail(`cannot read ${file} (${cause.message})`, cause);
    });
    if (actual !== expected) throw fail(`${file} has sha256 ${actual}, manifest says ${expected}`);
  }
  return manifest;
}
