export { ConversionError } from "./ConversionError.js";
export { convertLayersModel } from "./convertLayersModel.js";
export { CONVERTER_VERSION, type ConvertOptions, layersToOnnx } from "./layersToOnnx.js";
export {
  decodeWeights,
  type LayerJson,
  type LayersModel,
  type LayersModelJson,
  type ModelTopology,
  readLayersModel,
  type Weight,
  type WeightSpec,
  type WeightsGroup,
} from "./readLayersModel.js";
