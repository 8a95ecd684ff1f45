import { copyFile, mkdtemp, rm, writeFile } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ensureEsrganBundle, loadUpscaler, type Upscaler } from "../src/index.js";
import { sha256 } from "../src/read-upscaler-manifest.js";
import { diff, pattern } from "./pattern.js";

const TINY = fileURLToPath(new URL("../../../models/tiny-random/", import.meta.url));

let dir: string;
let cacheRoot: string;
let esrganDir: string;

/** A bundle of two models: the tiny random x4 for any side, ESRGAN-slim for 16 px inputs. */
async function writeBundle(upscaler: Record<string, unknown>, files?: Record<string, string>) {
  await writeFile(
    path.join(dir, "manifest.json"),
    JSON.stringify({
      name: "two-pass",
      version: "0.1.0",
      files: files ?? {
        "tiny.onnx": await sha256(path.join(dir, "tiny.onnx")),
        "esrgan.onnx": await sha256(path.join(dir, "esrgan.onnx")),
      },
      upscaler: { model: "tiny.onnx", scale: 4, inputRange: [0, 255], ...upscaler },
    }),
  );
}

beforeAll(async () => {
  dir = await mkdtemp(path.join(os.tmpdir(), "by-side-"));
  cacheRoot = await mkdtemp(path.join(os.tmpdir(), "by-side-cache-"));
  esrganDir = await ensureEsrganBundle("slim", 4, cacheRoot);
  await copyFile(path.join(TINY, "upscaler_x4.onnx"), path.join(dir, "tiny.onnx"));
  await copyFile(path.join(esrganDir, "model.onnx"), path.join(dir, "esrgan.onnx"));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
  await rm(cacheRoot, { recursive: true, force: true });
});

describe("a bundle with a model per input side", () => {
  let twoPass: Upscaler;
  let tiny: Upscaler;
  let esrgan: Upscaler;
  beforeAll(async () => {
    await writeBundle({ bySide: { "16": "esrgan.onnx" }, decoders: ["tiny-random"], tileSize: 4096, backProjection: 0 });
    const options = { executionProvider: "cpu" as const, intraOpThreads: 1 };
    [twoPass, tiny, esrgan] = await Promise.all([
      loadUpscaler(dir, options),
      loadUpscaler(TINY, options),
      loadUpscaler(esrganDir, options),
    ]);
  });
  afterAll(async () => {
    await Promise.all([twoPass?.close(), tiny?.close(), esrgan?.close()]);
  });

  it("runs the side's own model on a square input of that side, and the default model on the rest", async () => {
    const whole = { tileSize: 4096, backProjection: 0 };
    const [square16, other] = await twoPass.upscale([pattern(16, 16, 1), pattern(24, 20, 2)]);
    const [viaEsrgan] = await esrgan.upscale([pattern(16, 16, 1)], whole);
    const [viaTiny] = await tiny.upscale([pattern(24, 20, 2)], whole);
    const [tinyOn16] = await tiny.upscale([pattern(16, 16, 1)], whole);
    expect(diff(square16, viaEsrgan).max).toBeLessThanOrEqual(1);
    expect(diff(other, viaTiny).max).toBeLessThanOrEqual(1);
    // the two models really differ on that input, so the first check tells which one ran
    expect(diff(square16, tinyOn16).max).toBeGreaterThan(10);
  });

  it("says which decoders it is for and the settings it asks for", () => {
    expect(twoPass.decoders).toEqual(["tiny-random"]);
    expect(twoPass.settings).toEqual({ tileSize: 4096, backProjection: 0 });
    expect(tiny.decoders).toEqual([]);
    expect(tiny.settings).toEqual({});
  });
});

describe("the manifest's per-side section", () => {
  it.each([
    [{ bySide: { "16": "missing.onnx" } }, /missing\.onnx is used but not listed in files/],
    [{ bySide: { sixteen: "esrgan.onnx" } }, /"upscaler\.bySide" key "sixteen" is not an input side in pixels/],
    [{ decoders: "tiny-random" }, /"upscaler\.decoders" must be a list of decoder bundle names/],
    [{ tileSize: 8 }, /"upscaler\.tileSize" 8 is not an integer of at least 16/],
    [{ backProjection: 11 }, /"upscaler\.backProjection" 11 is not an integer from 0 to 10/],
  ])("refuses %j", async (section, message) => {
    await writeBundle(section);
    await expect(loadUpscaler(dir, { executionProvider: "cpu" })).rejects.toThrow(message);
  });

  it("checks the sha256 of every per-side model", async () => {
    const tinySha = await sha256(path.join(dir, "tiny.onnx"));
    await writeBundle({ bySide: { "16": "esrgan.onnx" } }, { "tiny.onnx": tinySha, "esrgan.onnx": tinySha });
    await expect(loadUpscaler(dir, { executionProvider: "cpu" })).rejects.toThrow(/esrgan\.onnx has sha256 [0-9a-f]{64}, manifest says/);
  });
});
