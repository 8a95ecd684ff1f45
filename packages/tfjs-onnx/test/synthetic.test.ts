import * as tf from "@tensorflow/tfjs";
import { expect, it } from "vitest";
import { decodeWeights, layersToOnnx, type ModelTopology } from "../src/index.js";
import { maxAbsDiff, randomPixels } from "./helpers.js";

// The options the ESRGAN models do not use (strides, dilation, even kernels, "valid", no bias, the other
// activations, a 3-way Add, a non-square UpSampling2D) on a small random model TF.js builds itself.
it("converts strides, dilation, valid padding, activations, n-ary Add and non-square upsampling exactly", async () => {
  await tf.setBackend("cpu");
  const input = tf.input({ shape: [null, null, 3], name: "rgb" });
  const a = tf.layers
    .conv2d({ name: "a", filters: 8, kernelSize: 3, strides: 2, padding: "same", activation: "relu" })
    .apply(input) as tf.SymbolicTensor;
  const b = tf.layers
    .conv2d({ name: "b", filters: 6, kernelSize: 3, dilationRate: 2, padding: "same", activation: "sigmoid" })
    .apply(a) as tf.SymbolicTensor;
  const c = tf.layers
    .conv2d({ name: "c", filters: 6, kernelSize: 1, padding: "valid", activation: "tanh", useBias: false })
    .apply(a) as tf.SymbolicTensor;
  const d = tf.layers.conv2d({ name: "d", filters: 6, kernelSize: [2, 4], padding: "same" }).apply(a) as tf.SymbolicTensor;
  const sum = tf.layers.add({ name: "sum" }).apply([b, c, d]) as tf.SymbolicTensor;
  const cat = tf.layers.concatenate({ name: "cat", axis: -1 }).apply([sum, a]) as tf.SymbolicTensor;
  const up = tf.layers.upSampling2d({ name: "up", size: [2, 3] }).apply(cat) as tf.SymbolicTensor;
  const act = tf.layers.activation({ name: "act", activation: "relu" }).apply(up) as tf.SymbolicTensor;
  const out = tf.layers.conv2d({ name: "out", filters: 3, kernelSize: 3, padding: "same" }).apply(act) as tf.SymbolicTensor;
  const model = tf.model({ inputs: input, outputs: out });

  let saved: tf.io.ModelArtifacts | undefined;
  await model.save(
    tf.io.withSaveHandler(
      async (artifacts) => ((saved = artifacts), { modelArtifactsInfo: { dateSaved: new Date(), modelTopologyType: "JSON" } }),
    ),
  );
  if (!saved?.weightSpecs || !(saved.weightData instanceof ArrayBuffer)) throw new Error("TF.js saved no weights");
  const weights = decodeWeights([{ paths: ["weights.bin"], weights: saved.weightSpecs }], [[new Uint8Array(saved.weightData)]]);
  const onnxBytes = layersToOnnx({ topology: saved.modelTopology as ModelTopology, weights });

  const shape: [number, number, number, number] = [2, 13, 18, 3];
  const { max, dims } = await maxAbsDiff(
    model,
    onnxBytes,
    randomPixels(2 * 13 * 18 * 3, 7).map((v) => v / 255),
    shape,
  );
  console.log(`synthetic model: max |onnx - tfjs| = ${max.toExponential(2)} over [${dims}]`);
  expect(dims).toEqual([2, 3, 14, 27]);
  expect(max).toBeLessThanOrEqual(1e-4);
});
