import { createHash } from "node:crypto";
import { existsSync } from "node:fs";
import { chmod, mkdir, mkdtemp, readFile, rename, rm, writeFile } from "node:fs/promises";
import { createRequire } from "node:module";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { CONVERTER_VERSION, type LayersModelJson, layersToOnnx, readLayersModel } from "@unclip/tfjs-onnx";
import { sha256, type UpscalerManifest } from "./read-upscaler-manifest.js";
import { UpscalerError } from "./upscaler-error.js";

export type EsrganVariant = "slim" | "medium";
export type EsrganScale = 2 | 3 | 4 | 8;

/** manifest.json of a converted ESRGAN bundle: the upscaler manifest plus where it came from. */
export interface EsrganManifest extends UpscalerManifest {
  source: { package: string; version: string; sha256: string };
  converter: { package: "@unclip/tfjs-onnx"; version: string };
}

/** <repo>/models/.cache, which .gitignore keeps out of git. */
export const DEFAULT_CACHE_ROOT = fileURLToPath(new URL("../../../models/.cache/", import.meta.url));

function packageDir(pkg: string): string {
  // The package's exports map hides package.json from require.resolve, so look along the resolution paths.
  const require = createRequire(import.meta.url);
  const dir = (require.resolve.paths(pkg) ?? []).map((d) => path.join(d, pkg)).find((d) => existsSync(path.join(d, "package.json")));
  if (!dir) throw new UpscalerError(`${pkg} is not installed; run npm ci`);
  return dir;
}

/** sha256 over the TF.js model.json and its weight shards, in manifest order. */
async function sourceHash(modelJsonPath: string): Promise<string> {
  const json = await readFile(modelJsonPath);
  const { weightsManifest } = JSON.parse(json.toString("utf8")) as LayersModelJson;
  const hash = createHash("sha256").update(json);
  for (const file of weightsManifest.flatMap((g) => g.paths)) hash.update(await readFile(path.join(path.dirname(modelJsonPath), file)));
  return hash.digest("hex");
}

/** True when `dir` holds a bundle converted from exactly `source` by this converter version, with intact files. */
async function isCurrent(dir: string, source: EsrganManifest["source"]): Promise<boolean> {
  try {
    const manifest = JSON.parse(await readFile(path.join(dir, "manifest.json"), "utf8")) as EsrganManifest;
    if (manifest.source?.sha256 !== source.sha256 || manifest.converter?.version !== CONVERTER_VERSION) return false;
    for (const [file, expected] of Object.entries(manifest.files)) if ((await sha256(path.join(dir, file))) !== expected) return false;
    return true;
  } catch {
    return false;
  }
}

function isCode(error: unknown, ...codes: string[]): boolean {
  return codes.includes((error as NodeJS.ErrnoException).code ?? "");
}

/**
 * Converts the ESRGAN model of the installed @upscalerjs/esrgan-<variant> package to an upscaler bundle
 * (model.onnx + manifest.json) in `<cacheRoot>/esrgan-<variant>-x<scale>/` and returns that directory. A bundle
 * already there is reused while its recorded source hash and converter version match. Safe to call from several
 * processes at once: each writes into its own temporary directory and renames it into place.
 */
export async function ensureEsrganBundle(variant: EsrganVariant, scale: EsrganScale, cacheRoot = DEFAULT_CACHE_ROOT): Promise<string> {
  if (variant !== "slim" && variant !== "medium") throw new UpscalerError(`ESRGAN variant "${variant}" is not slim or medium`);
  if (![2, 3, 4, 8].includes(scale)) throw new UpscalerError(`ESRGAN scale ${scale} is not 2, 3, 4 or 8`);
  const pkg = `@upscalerjs/esrgan-${variant}`;
  const pkgDir = packageDir(pkg);
  const modelJson = path.join(pkgDir, "models", `x${scale}`, "model.json");
  const { version } = JSON.parse(await readFile(path.join(pkgDir, "package.json"), "utf8")) as { version: string };
  const source = { package: pkg, version, sha256: await sourceHash(modelJson) };
  const name = `esrgan-${variant}-x${scale}`;
  const dir = path.join(cacheRoot, name);
  if (await isCurrent(dir, source)) return dir;

  await mkdir(cacheRoot, { recursive: true });
  const tmp = await mkdtemp(path.join(cacheRoot, `.${name}-`));
  try {
    const onnx = layersToOnnx(await readLayersModel(modelJson), {
      docString: `${pkg}@${version} models/x${scale}, converted by @unclip/tfjs-onnx`,
    });
    await writeFile(path.join(tmp, "model.onnx"), onnx);
    const manifest: EsrganManifest = {
      name,
      version,
      files: { "model.onnx": createHash("sha256").update(onnx).digest("hex") },
      upscaler: { model: "model.onnx", scale, inputRange: [0, 255] },
      source,
      converter: { package: "@unclip/tfjs-onnx", version: CONVERTER_VERSION },
    };
    await writeFile(path.join(tmp, "manifest.json"), `${JSON.stringify(manifest, null, 2)}\n`);
    await chmod(tmp, 0o755); // mkdtemp makes it private; workers may run as another user
    await install(tmp, dir, source);
  } finally {
    await rm(tmp, { recursive: true, force: true });
  }
  return dir;
}

/** Renames the finished `tmp` to `dir`, replacing a stale `dir`, and accepting one another process just installed. */
async function install(tmp: string, dir: string, source: EsrganManifest["source"]): Promise<void> {
  for (let attempt = 0; attempt < 3; attempt++) {
    try {
      await rename(tmp, dir);
      return;
    } catch (error) {
      if (!isCode(error, "ENOTEMPTY", "EEXIST")) throw error;
    }
    if (await isCurrent(dir, source)) return; // another process won the race with the same conversion
    const stale = `${tmp}.stale`;
    try {
      await rename(dir, stale);
    } catch (error) {
      if (!isCode(error, "ENOENT")) throw error;
    }
    await rm(stale, { recursive: true, force: true });
  }
  throw new UpscalerError(`could not install the converted model into ${dir}`);
}
