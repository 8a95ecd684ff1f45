import { cp, mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { Tensor } from "onnxruntime-node";
import { loadBundle } from "../src/bundle.js";
import { BundleError } from "../src/manifest.js";
import { TINY_BUNDLE } from "./helpers.js";

const temps: string[] = [];
afterAll(() => Promise.all(temps.map((dir) => rm(dir, { recursive: true, force: true }))));

async function copyBundle(): Promise<string> {
  const dir = await mkdtemp(path.join(tmpdir(), "unclip-bundle-"));
  temps.push(dir);
  await cp(TINY_BUNDLE, dir, { recursive: true });
  return dir;
}

describe("loadBundle", () => {
  it("loads the sections asked for and names the bundle", async () => {
    const bundle = await loadBundle(TINY_BUNDLE, { sections: ["decoder", "upscaler"] });
    expect(bundle.id).toBe("tiny-random@1.0.0");
    expect(bundle.executionProvider).toBe("cpu");
    expect(Object.keys(bundle.sessions).sort()).toEqual(["decoder", "upscaler"]);
    expect(bundle.tokenizer).toBeUndefined();
    expect(bundle.manifest.decoder).toMatchObject({ defaultSteps: 25, defaultGuidance: 8, defaultSampler: "ddpm" });
    expect(bundle.manifest.upscaler).toEqual({ model: "upscaler_x4.onnx", scale: 4, inputRange: [0, 255] });

    const upscaler = bundle.sessions.upscaler!;
    const image = new Float32Array(2 * 3 * 5 * 7).map((_, i) => (i * 37) % 256);
    const { upscaled } = await upscaler.run({ image: new Tensor("float32", image, [2, 3, 5, 7]) });
    expect(upscaled.dims).toEqual([2, 3, 20, 28]);
    expect((upscaled.data as Float32Array).every((v) => v >= 0 && v <= 255)).toBe(true);
    await bundle.release();
  });

  it("falls back to CPU, and says so, when CUDA cannot load", async () => {
    const logs: string[] = [];
    const bundle = await loadBundle(TINY_BUNDLE, { sections: ["decoder"], executionProvider: "cuda", log: (msg) => logs.push(msg) });
    // This machine has no CUDA provider; on a GPU machine the bundle runs on CUDA and logs only the load.
    if (bundle.executionProvider === "cpu") expect(logs.some((msg) => /CUDA.*CPU/.test(msg))).toBe(true);
    expect(bundle.sessions.decoder).toBeDefined();
    await bundle.release();
  });

  it("refuses a file whose sha256 does not match the manifest", async () => {
    const dir = await copyBundle();
    const manifestPath = path.join(dir, "manifest.json");
    const manifest = JSON.parse(await readFile(manifestPath, "utf8"));
    manifest.files["decoder.onnx"] = "0".repeat(64);
    await writeFile(manifestPath, JSON.stringify(manifest));
    await expect(loadBundle(dir, { sections: ["decoder"] })).rejects.toThrow(/decoder\.onnx has sha256 [0-9a-f]{64}, manifest says 0{64}/);
  });

  it("refuses a tampered model file and a missing section", async () => {
    const dir = await copyBundle();
    await writeFile(path.join(dir, "prior.onnx"), "not a model");
    await expect(loadBundle(dir, { sections: ["prior"] })).rejects.toBeInstanceOf(BundleError);
    const clean = await copyBundle();
    const manifestPath = path.join(clean, "manifest.json");
    const manifest = JSON.parse(await readFile(manifestPath, "utf8"));
    delete manifest.prior;
    await writeFile(manifestPath, JSON.stringify(manifest));
    await expect(loadBundle(clean, { sections: ["prior"] })).rejects.toThrow(/no "prior" section/);
  });
});

describe("tiny-random models", () => {
  it("give finite outputs for extreme inputs (all-padding prompts, huge values, every timestep end)", async () => {
    const bundle = await loadBundle(TINY_BUNDLE, { sections: ["clip", "prior", "decoder"] });
    const { textEncoder, imageEncoder, prior, decoder } = bundle.sessions;
    const finite = (t: Tensor) => (t.data as Float32Array).every(Number.isFinite);
    const n = 2;
    const text = await textEncoder!.run({ input_ids: new Tensor("int64", new BigInt64Array(n * 16), [n, 16]) });
    expect(finite(text.text_embeds) && finite(text.last_hidden_state)).toBe(true);
    const image = await imageEncoder!.run({
      pixel_values: new Tensor("float32", new Float32Array(n * 3 * 64 * 64).fill(-1e3), [n, 3, 64, 64]),
    });
    expect(finite(image.image_embeds)).toBe(true);
    for (const t of [0n, 999n]) {
      const p = await prior!.run({
        hidden_states: new Tensor("float32", new Float32Array(n * 32).fill(1e3), [n, 32]),
        timestep: new Tensor("int64", new BigInt64Array(n).fill(t), [n]),
        proj_embedding: new Tensor("float32", new Float32Array(n * 32).fill(-1e3), [n, 32]),
        encoder_hidden_states: new Tensor("float32", new Float32Array(n * 16 * 32).fill(1e3), [n, 16, 32]),
        attention_mask: new Tensor("bool", new Uint8Array(n * 16), [n, 16]),
      });
      expect(finite(p.predicted_image_embedding)).toBe(true);
      const d = await decoder!.run({
        sample: new Tensor("float32", new Float32Array(n * 7 * 64 * 64).fill(1e3), [n, 7, 64, 64]),
        timestep: new Tensor("int64", new BigInt64Array(n).fill(t), [n]),
        image_embeds: new Tensor("float32", new Float32Array(n * 32).fill(-1e3), [n, 32]),
      });
      expect(d.out_sample.dims).toEqual([n, 6, 64, 64]);
      expect(finite(d.out_sample)).toBe(true);
      const v = (d.out_sample.data as Float32Array).subarray(3 * 64 * 64, 6 * 64 * 64);
      expect(v.every((value) => value >= -1 && value <= 1)).toBe(true);
    }
    await bundle.release();
  });
});
