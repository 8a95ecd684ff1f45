import { describe, expect, it } from "vitest";
import { ConversionError, type LayerJson, type LayersModel, layersToOnnx, readLayersModel } from "../src/index.js";
import { upscalerjsModelJson } from "./helpers.js";

const model = await readLayersModel(upscalerjsModelJson("@upscalerjs/esrgan-slim", 2));

/** The slim x2 model with one layer changed by `edit`. */
function withLayer(name: string, edit: (layer: LayerJson) => void): LayersModel {
  const topology = structuredClone(model.topology);
  const layer = topology.config.layers.find((l) => l.name === name);
  if (!layer) throw new Error(`no layer ${name}`);
  edit(layer);
  return { topology, weights: model.weights };
}

function conversionError(m: LayersModel): ConversionError {
  try {
    layersToOnnx(m);
  } catch (error) {
    if (error instanceof ConversionError) return error;
    throw error;
  }
  throw new Error("conversion did not fail");
}

describe("refuses what it cannot translate, naming the layer", () => {
  it.each<[string, string, (l: LayerJson) => void, RegExp]>([
    [
      "an unknown layer type",
      "F_0",
      (l) => (l.class_name = "BatchNormalization"),
      /layer "F_0": layer type BatchNormalization is not supported/,
    ],
    [
      "bilinear upsampling",
      "UPsample",
      (l) => (l.config.interpolation = "bilinear"),
      /layer "UPsample": interpolation "bilinear" is not supported/,
    ],
    ["channels_first", "GFF_1", (l) => (l.config.data_format = "channels_first"), /layer "GFF_1": data_format "channels_first"/],
    [
      "an unknown option",
      "F_1_1",
      (l) => (l.config.kernel_quantizer = "int8"),
      /layer "F_1_1": Conv2D option "kernel_quantizer" is not supported/,
    ],
    ["an unknown activation", "UPN1_Relu", (l) => (l.config.activation = "gelu"), /layer "UPN1_Relu": activation "gelu" is not supported/],
    ["causal padding", "SR", (l) => (l.config.padding = "causal"), /layer "SR": padding "causal" is not supported/],
  ])("%s", (_, name, edit, message) => {
    const error = conversionError(withLayer(name, edit));
    expect(error.name).toBe("ConversionError");
    expect(error.layer).toBe(name);
    expect(error.message).toMatch(message);
  });

  it("a missing weight", () => {
    const weights = new Map(model.weights);
    weights.delete("UPN2/bias");
    expect(() => layersToOnnx({ topology: model.topology, weights })).toThrow(/layer "UPN2": has no weight "UPN2\/bias"/);
  });
});
