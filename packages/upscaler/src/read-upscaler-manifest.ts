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
  if (!(upscaler.model in manifest.files)) throw fail(`${upscaler.model} is used but not listed in files`);
  for (const [file, expected] of Object.entries(manifest.files)) {
    const actual = await sha256(path.join(bundleDir, file)).catch((cause: Error) => {
      throw fail(`cannot read ${file} (${cause.message})`, cause);
    });
    if (actual !== expected) throw fail(`${file} has sha256 ${actual}, manifest says ${expected}`);
  }
  return manifest;
}
