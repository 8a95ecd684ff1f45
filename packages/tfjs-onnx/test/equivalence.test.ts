import { describe, expect, it } from "vitest";
import { convertLayersModel } from "../src/index.js";
import { loadTfjs, maxAbsDiff, randomPixels, upscalerjsModelJson } from "./helpers.js";

// The pretrained ESRGAN/RDN models that npm ships, against the pure-JS TF.js CPU backend. Inputs are small
// (and not square, so a swapped h/w shows) because TF.js on the CPU is slow for the larger models.
describe.each([
  ["@upscalerjs/esrgan-slim", 2],
  ["@upscalerjs/esrgan-slim", 4],
  ["@upscalerjs/esrgan-medium", 2],
  ["@upscalerjs/esrgan-medium", 4],
])("%s x%i", (pkg, scale) => {
  it("matches TF.js within 1e-2 on the 0-255 scale", async () => {
    const modelJson = upscalerjsModelJson(pkg, scale);
    const shape: [number, number, number, number] = [2, 20, 28, 3];
    const input = randomPixels(
      shape.reduce((a, b) => a * b),
      scale,
    );
    const [tfModel, onnxBytes] = await Promise.all([loadTfjs(modelJson), convertLayersModel(modelJson)]);
    const { max, dims, outputRange } = await maxAbsDiff(tfModel, onnxBytes, input, shape);
    console.log(
      `${pkg} x${scale}: max |onnx - tfjs| = ${max.toExponential(2)} over [${dims}], TF.js output range [${outputRange.map((v) => v.toFixed(1))}]`,
    );
    expect(dims).toEqual([2, 3, 20 * scale, 28 * scale]);
    expect(max).toBeLessThanOrEqual(1e-2);
  });
});
