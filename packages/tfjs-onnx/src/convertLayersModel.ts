import { type ConvertOptions, layersToOnnx } from "./layersToOnnx.js";
import { readLayersModel } from "./readLayersModel.js";

/** Reads a TF.js layers model from its model.json path and returns the bytes of the equivalent ONNX model. */
export async function convertLayersModel(modelJsonPath: string, options: ConvertOptions = {}): Promise<Uint8Array> {
  return layersToOnnx(await readLayersModel(modelJsonPath), options);
}
