import onnxProto from "onnx-proto";
import ort from "onnxruntime-node";
import { expect, it } from "vitest";
import { convertLayersModel } from "../src/index.js";
import { upscalerjsModelJson } from "./helpers.js";

const { onnx } = onnxProto;

// docs/tensor-contract.md §7, single-pass upscaler: image [n,3,h,w] -> upscaled [n,3,kh,kw], NCHW, any n, h, w.
it("writes the upscaler contract: image [n,3,h,w] -> upscaled [n,3,kh,kw]", async () => {
  const bytes = await convertLayersModel(upscalerjsModelJson("@upscalerjs/esrgan-slim", 4));
  const graph = onnx.ModelProto.decode(bytes).graph as InstanceType<typeof onnx.GraphProto>;
  const signature = (values: InstanceType<typeof onnx.GraphProto>["input"]) =>
    values.map((v) => [v.name, (v.type?.tensorType?.shape?.dim ?? []).map((d) => d.dimParam || Number(d.dimValue))]);
  expect(signature(graph.input)).toEqual([["image", ["n", 3, "h", "w"]]]);
  expect(signature(graph.output)).toEqual([["upscaled", ["n", 3, "out_h", "out_w"]]]);

  const session = await ort.InferenceSession.create(bytes);
  const result = await session.run({ image: new ort.Tensor("float32", new Float32Array(3 * 3 * 5 * 7).fill(128), [3, 3, 5, 7]) });
  expect(result.upscaled.dims).toEqual([3, 3, 20, 28]);
  await session.release();
});
