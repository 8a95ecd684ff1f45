import { existsSync } from "node:fs";
import { readFile } from "node:fs/promises";
import { createRequire } from "node:module";
import path from "node:path";
import * as tf from "@tensorflow/tfjs";
import ort from "onnxruntime-node";
import type { LayersModelJson } from "../src/index.js";

/** model.json of an installed @upscalerjs model package (its exports map hides package.json from require.resolve). */
export function upscalerjsModelJson(pkg: string, scale: number): string {
  const require = createRequire(import.meta.url);
  const dir = (require.resolve.paths(pkg) ?? []).map((d) => path.join(d, pkg)).find((d) => existsSync(path.join(d, "package.json")));
  if (!dir) throw new Error(`${pkg} is not installed`);
  return path.join(dir, "models", `x${scale}`, "model.json");
}

/** Loads a TF.js layers model from disk into the pure-JS CPU backend. */
export async function loadTfjs(modelJsonPath: string): Promise<tf.LayersModel> {
  await tf.setBackend("cpu");
  const json = JSON.parse(await readFile(modelJsonPath, "utf8")) as LayersModelJson;
  const dir = path.dirname(modelJsonPath);
  const shards = await Promise.all(json.weightsManifest.flatMap((g) => g.paths.map((p) => readFile(path.join(dir, p)))));
  const weightData = new Uint8Array(Buffer.concat(shards)).buffer;
  return tf.loadLayersModel({
    load: async () => ({
      modelTopology: json.modelTopology as object,
      weightSpecs: json.weightsManifest.flatMap((g) => g.weights) as tf.io.WeightsManifestEntry[],
      weightData,
    }),
  });
}

/** Deterministic pseudo-random floats in [0, 255) (mulberry32), so failures reproduce. */
export function randomPixels(count: number, seed: number): Float32Array {
  const out = new Float32Array(count);
  let a = seed >>> 0;
  for (let i = 0; i < count; i++) {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    out[i] = (((t ^ (t >>> 14)) >>> 0) / 4294967296) * 255;
  }
  return out;
}

export function nhwcToNchw(data: Float32Array, [n, h, w, c]: number[]): Float32Array {
  const out = new Float32Array(data.length);
  for (let b = 0; b < n; b++)
    for (let y = 0; y < h; y++)
      for (let x = 0; x < w; x++) for (let k = 0; k < c; k++) out[((b * c + k) * h + y) * w + x] = data[((b * h + y) * w + x) * c + k];
  return out;
}

/** Runs the TF.js model and the converted ONNX model on the same NHWC input; returns the max |difference|. */
export async function maxAbsDiff(
  model: tf.LayersModel,
  onnxBytes: Uint8Array,
  input: Float32Array,
  shape: [number, number, number, number],
) {
  const expected = tf.tidy(() => model.predict(tf.tensor4d(input, shape)) as tf.Tensor4D);
  const expectedShape = expected.shape;
  const expectedNchw = nhwcToNchw(await expected.data<"float32">(), expectedShape);
  expected.dispose();
  const session = await ort.InferenceSession.create(onnxBytes);
  try {
    const [n, h, w, c] = shape;
    const result = await session.run({ [session.inputNames[0]]: new ort.Tensor("float32", nhwcToNchw(input, shape), [n, c, h, w]) });
    const actual = result[session.outputNames[0]];
    const [en, eh, ew, ec] = expectedShape;
    if (actual.dims.join() !== [en, ec, eh, ew].join()) throw new Error(`ONNX output dims [${actual.dims}] != TF.js [${[en, ec, eh, ew]}]`);
    const data = actual.data as Float32Array;
    let max = 0;
    for (let i = 0; i < data.length; i++) max = Math.max(max, Math.abs(data[i] - expectedNchw[i]));
    return { max, dims: actual.dims, outputRange: [Math.min(...expectedNchw), Math.max(...expectedNchw)] };
  } finally {
    await session.release();
  }
}
