import { type ConvertOptions, layersToOnnx } from "./layers-to-onnx.js";
import { readLayersModel } from "./read-layers-model.js";

/** Reads a TF.js layers model from its model.json path and returns the bytes of the equivalent ONNX model. */
export async function convertLayersModel(modelJsonPath: string, options: ConvertOptions = {}): Promise<Uint8Array> {
  return layersToOnnx(await readLayersModel(modelJsonPath), options);
}
