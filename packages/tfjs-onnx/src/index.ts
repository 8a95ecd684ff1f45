export { ConversionError } from "./conversion-error.js";
export { convertLayersModel } from "./convert-layers-model.js";
export { CONVERTER_VERSION, type ConvertOptions, layersToOnnx } from "./layers-to-onnx.js";
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
} from "./read-layers-model.js";
