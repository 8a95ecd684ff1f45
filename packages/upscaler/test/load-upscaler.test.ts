import { existsSync } from "node:fs";
import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { createRequire } from "node:module";
import os from "node:os";
import path from "node:path";
import sharp from "sharp";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ensureEsrganBundle, loadUpscaler, type Upscaler, UpscalerError } from "../src/index.js";
import { diff, pattern } from "./pattern.js";

let cacheRoot: string;
let slim: Upscaler;

beforeAll(async () => {
  cacheRoot = await mkdtemp(path.join(os.tmpdir(), "upscaler-test-"));
  slim = await loadUpscaler(await ensureEsrganBundle("slim", 4, cacheRoot), { executionProvider: "cpu" });
});
afterAll(async () => {
  await slim?.close();
  await rm(cacheRoot, { recursive: true, force: true });
});

describe("a converted ESRGAN bundle", () => {
  it("names itself and its scale", () => {
    expect(slim.bundle).toBe("esrgan-slim-x4@1.0.0");
    expect(slim.scale).toBe(4);
  });

  it("upscales x4, same-sized images in one batch, and gives what each gives alone", async () => {
    const images = [pattern(24, 20, 0), pattern(16, 16, 1), pattern(24, 20, 2), pattern(24, 20, 3)];
    const together = await slim.upscale(images);
    expect(together.map((r) => [r.width, r.height])).toEqual([
      [96, 80],
      [64, 64],
      [96, 80],
      [96, 80],
    ]);
    for (const [i, image] of images.entries()) {
      const [alone] = await slim.upscale([image]);
      expect(diff(alone, together[i]).max).toBeLessThanOrEqual(1);
    }
  });

  it.each([
    ["slim", 48, 12],
    ["slim", 40, 16],
    ["medium", 48, 16],
  ] as const)("%s: tiles of %i px overlapping by %i blend to the untiled result", async (variant, tileSize, overlap) => {
    const upscaler =
      variant === "slim" ? slim : await loadUpscaler(await ensureEsrganBundle(variant, 4, cacheRoot), { executionProvider: "cpu" });
    const image = pattern(100, 72);
    const [whole] = await upscaler.upscale([image], { tileSize: 128 });
    const [tiled] = await upscaler.upscale([image], { tileSize, overlap, tileBatch: 3 });
    const { max, mean } = diff(whole, tiled);
    console.log(
      `${variant} x4, 100x72 -> 400x288, tiles ${tileSize}/${overlap}: max |tiled - untiled| = ${max}, mean ${mean.toFixed(4)} (0..255)`,
    );
    expect(mean).toBeLessThan(0.02);
    expect(max).toBeLessThanOrEqual(2);
    if (upscaler !== slim) await upscaler.close();
  });

  it("stops between batches when the signal aborts", async () => {
    const controller = new AbortController();
    controller.abort(new Error("job cancelled"));
    await expect(slim.upscale([pattern(64, 64)], { tileSize: 32, overlap: 8, signal: controller.signal })).rejects.toThrow("job cancelled");
  });

  it("refuses images whose data is not RGB of their size, and bad tile options", async () => {
    await expect(slim.upscale([{ width: 4, height: 4, data: new Uint8Array(4 * 4 * 4) }])).rejects.toThrow(
      /image 0: 64 bytes is not RGB 4x4/,
    );
    await expect(slim.upscale([pattern(8, 8)], { tileSize: 16, overlap: 16 })).rejects.toThrow(UpscalerError);
  });

  it("uses CUDA only when asked, and says so when it falls back to the CPU", async () => {
    const logs: string[] = [];
    const upscaler = await loadUpscaler(path.join(cacheRoot, "esrgan-slim-x4"), {
      executionProvider: "cuda",
      log: (msg) => logs.push(msg),
    });
    if (upscaler.provider === "cpu") expect(logs.join("\n")).toMatch(/CUDA execution provider is not available, running on the CPU/);
    const [out] = await upscaler.upscale([pattern(8, 8)]);
    expect(out.width).toBe(32);
    await upscaler.close();
  });
});

it("refuses a bundle whose model does not have the sha256 its manifest records", async () => {
  const dir = await ensureEsrganBundle("slim", 2, cacheRoot);
  const manifestPath = path.join(dir, "manifest.json");
  const manifest = JSON.parse(await readFile(manifestPath, "utf8"));
  manifest.files["model.onnx"] = "0".repeat(64);
  await writeFile(manifestPath, JSON.stringify(manifest));
  await expect(loadUpscaler(dir, { executionProvider: "cpu" })).rejects.toThrow(/model.onnx has sha256 [0-9a-f]{64}, manifest says 0{64}/);
});

// The packages ship assets/samples/4x/result.png: what UpscalerJS (TF.js) made of assets/fixture.png.
it.each(["slim", "medium"] as const)("reproduces the x4 sample that @upscalerjs/esrgan-%s ships", async (variant) => {
  const pkg = `@upscalerjs/esrgan-${variant}`;
  const assets = (createRequire(import.meta.url).resolve.paths(pkg) ?? [])
    .map((d) => path.join(d, pkg, "assets"))
    .find((d) => existsSync(d));
  if (!assets) throw new Error(`${pkg} is not installed`);
  const read = async (file: string) => {
    const { data, info } = await sharp(path.join(assets, file)).removeAlpha().raw().toBuffer({ resolveWithObject: true });
    return { width: info.width, height: info.height, data: new Uint8Array(data) };
  };
  const upscaler = await loadUpscaler(await ensureEsrganBundle(variant, 4, cacheRoot), { executionProvider: "cpu" });
  const [ours] = await upscaler.upscale([await read("fixture.png")], { tileSize: 4096, backProjection: 0 });
  await upscaler.close();
  const theirs = await read("samples/4x/result.png");
  const { max, mean } = diff(ours, theirs);
  console.log(`esrgan-${variant} x4 on fixture.png vs the package's samples/4x/result.png: max ${max}, mean ${mean.toFixed(5)}`);
  expect(max).toBeLessThanOrEqual(1);
});

// Measured on flat inputs: the network brightens light greys by about one level; back-projection (the default) removes it.
it("keeps flat colours: the raw network drifts, the default back-projection brings it back", async () => {
  const grey = { width: 32, height: 32, data: new Uint8Array(32 * 32 * 3).fill(240) };
  const mean = (data: Uint8Array) => data.reduce((s, v) => s + v, 0) / data.length;
  const [raw] = await slim.upscale([grey], { backProjection: 0 });
  const [corrected] = await slim.upscale([grey]);
  console.log(`esrgan-slim on flat 240: raw mean ${mean(raw.data).toFixed(3)}, back-projected ${mean(corrected.data).toFixed(3)}`);
  expect(Math.abs(mean(raw.data) - 240)).toBeGreaterThan(0.5);
  expect(Math.abs(mean(corrected.data) - 240)).toBeLessThan(0.1);
});
