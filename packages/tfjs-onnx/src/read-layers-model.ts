import { readFile } from "node:fs/promises";
import path from "node:path";
import { ConversionError } from "./conversion-error.js";

/** One layer of a Keras functional model as TF.js serialises it in model.json. */
export interface LayerJson {
  class_name: string;
  name: string;
  config: Record<string, unknown>;
  /** Per call of the layer: the [layerName, nodeIndex, tensorIndex, kwargs] it reads. */
  inbound_nodes: [string, number, number, unknown?][][];
}

export interface ModelTopology {
  class_name?: string;
  config: {
    name?: string;
    layers: LayerJson[];
    input_layers: [string, number, number][];
    output_layers: [string, number, number][];
  };
}

export interface WeightSpec {
  name: string;
  shape: number[];
  dtype: string;
  quantization?: unknown;
}

export interface WeightsGroup {
  paths: string[];
  weights: WeightSpec[];
}

/** The parsed model.json of a TF.js "layers-model". */
export interface LayersModelJson {
  format?: string;
  modelTopology: { model_config?: ModelTopology } & Partial<ModelTopology>;
  weightsManifest: WeightsGroup[];
}

export interface Weight {
  shape: number[];
  data: Float32Array;
}

export interface LayersModel {
  topology: ModelTopology;
  /** Weights by their manifest name, e.g. "conv1/kernel". */
  weights: Map<string, Weight>;
}

/** Splits the shards of a weights manifest into named float32 tensors. */
export function decodeWeights(manifest: WeightsGroup[], shards: Uint8Array[][]): Map<string, Weight> {
  const weights = new Map<string, Weight>();
  manifest.forEach((group, g) => {
    // A group's shards are one byte stream cut into files; weights may straddle shard boundaries.
    const bytes = Buffer.concat(shards[g]);
    let offset = 0;
    for (const spec of group.weights) {
      if (spec.dtype !== "float32" || spec.quantization !== undefined) {
        throw new ConversionError(
          `weight ${spec.name} is ${spec.dtype}${spec.quantization ? " (quantized)" : ""}; only plain float32 weights are supported`,
        );
      }
      const count = spec.shape.reduce((a, b) => a * b, 1);
      const end = offset + count * 4;
      if (end > bytes.length) throw new ConversionError(`weight ${spec.name} runs past the end of its shards (${bytes.length} bytes)`);
      // Copy so the tensor is 4-byte aligned whatever the shard offset.
      const data = new Float32Array(bytes.buffer.slice(bytes.byteOffset + offset, bytes.byteOffset + end));
      weights.set(spec.name, { shape: spec.shape, data });
      offset = end;
    }
  });
  return weights;
}

/** Reads a TF.js layers model (model.json and the weight shards beside it). */
export async function readLayersModel(modelJsonPath: string): Promise<LayersModel> {
  const json = JSON.parse(await readFile(modelJsonPath, "utf8")) as LayersModelJson;
  if (json.format !== undefined && json.format !== "layers-model") {
    throw new ConversionError(`${modelJsonPath} is a "${json.format}", not a "layers-model"`);
  }
  const topology = json.modelTopology.model_config ?? (json.modelTopology as ModelTopology);
  if (!topology?.config?.layers) throw new ConversionError(`${modelJsonPath} has no functional model topology`);
  const dir = path.dirname(modelJsonPath);
  const shards = await Promise.all(json.weightsManifest.map((group) => Promise.all(group.paths.map((p) => readFile(path.join(dir, p))))));
  return { topology, weights: decodeWeights(json.weightsManifest, shards) };
}
