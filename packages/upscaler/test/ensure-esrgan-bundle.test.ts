import { execFile } from "node:child_process";
import { mkdtemp, readdir, readFile, rm, stat, writeFile } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import { afterEach, beforeEach, expect, it } from "vitest";
import { type EsrganManifest, ensureEsrganBundle, readUpscalerManifest } from "../src/index.js";

let cacheRoot: string;
beforeEach(async () => {
  cacheRoot = await mkdtemp(path.join(os.tmpdir(), "esrgan-cache-"));
});
afterEach(async () => {
  await rm(cacheRoot, { recursive: true, force: true });
});

const manifestOf = async (dir: string) => JSON.parse(await readFile(path.join(dir, "manifest.json"), "utf8")) as EsrganManifest;

it("writes a bundle manifest with the model's sha256 and where it came from", async () => {
  const dir = await ensureEsrganBundle("medium", 4, cacheRoot);
  expect(dir).toBe(path.join(cacheRoot, "esrgan-medium-x4"));
  const manifest = await readUpscalerManifest(dir); // checks the recorded sha256
  expect(manifest).toMatchObject({
    name: "esrgan-medium-x4",
    version: "1.0.0",
    upscaler: { model: "model.onnx", scale: 4, inputRange: [0, 255] },
    source: { package: "@upscalerjs/esrgan-medium", version: "1.0.0", sha256: expect.stringMatching(/^[0-9a-f]{64}$/) },
  });
  expect(Object.keys(manifest.files)).toEqual(["model.onnx"]);
});

it("reuses the cache while the source hash matches, and converts again when it does not", async () => {
  const dir = await ensureEsrganBundle("slim", 2, cacheRoot);
  const first = (await stat(path.join(dir, "model.onnx"))).mtimeMs;
  await ensureEsrganBundle("slim", 2, cacheRoot);
  expect((await stat(path.join(dir, "model.onnx"))).mtimeMs).toBe(first);

  const manifest = await manifestOf(dir);
  const realSource = manifest.source.sha256;
  manifest.source.sha256 = "f".repeat(64); // as if the npm package had been updated
  await writeFile(path.join(dir, "manifest.json"), JSON.stringify(manifest));
  await ensureEsrganBundle("slim", 2, cacheRoot);
  expect((await manifestOf(dir)).source.sha256).toBe(realSource);
  expect(await readdir(cacheRoot)).toEqual(["esrgan-slim-x2"]); // no temporary or stale directories left
});

it("is safe when several processes convert into the same cache at once", async () => {
  const entry = fileURLToPath(new URL("../src/cli.ts", import.meta.url));
  const tsx = fileURLToPath(new URL("../../../node_modules/.bin/tsx", import.meta.url));
  const run = () => promisify(execFile)(tsx, [entry, "slim:3", "--cache", cacheRoot]);
  // Three at once, plus one in this process, against an empty cache and then against a stale one.
  for (const round of ["empty", "stale"]) {
    if (round === "stale") {
      const dir = path.join(cacheRoot, "esrgan-slim-x3");
      const manifest = await manifestOf(dir);
      manifest.converter.version = "0";
      await writeFile(path.join(dir, "manifest.json"), JSON.stringify(manifest));
    }
    await Promise.all([run(), run(), run(), ensureEsrganBundle("slim", 3, cacheRoot)]);
    expect(await readdir(cacheRoot)).toEqual(["esrgan-slim-x3"]);
    await readUpscalerManifest(path.join(cacheRoot, "esrgan-slim-x3"));
    expect((await manifestOf(path.join(cacheRoot, "esrgan-slim-x3"))).converter.version).not.toBe("0");
  }
}, 30_000);

it("refuses variants and scales the packages do not ship", async () => {
  await expect(ensureEsrganBundle("large" as "slim", 4, cacheRoot)).rejects.toThrow(/variant "large"/);
  await expect(ensureEsrganBundle("slim", 5 as 4, cacheRoot)).rejects.toThrow(/scale 5/);
});
