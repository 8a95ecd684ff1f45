export * from "./manifest.js";
export { threadingOptions, type SessionThreading } from "./session-threading.js";
export { respacedTimesteps, roundHalfEven, squaredcosCapV2, type NoiseSchedule } from "./schedule.js";
export { createSampler, DDIMInverseSampler, DDIMSampler, DDPMSampler, type Sampler } from "./samplers.js";
export { GaussianNoise } from "./noise.js";
export { applyGuidance } from "./guidance.js";
export { PromptTokenizer, PromptTooLongError, type EncodedPrompts, type PromptTokenizerOptions } from "./tokenizer.js";
export {
  loadBundle,
  type Bundle,
  type BundleLog,
  type BundleSessions,
  type EmbeddingStats,
  type ExecutionProvider,
  type LoadBundleOptions,
} from "./bundle.js";
export type { DiffusionOptions } from "./diffusion-options.js";
export { TextToEmbedding, type PromptItem } from "./text-to-embedding.js";
export { ImageToEmbedding } from "./image-to-embedding.js";
export {
  EmbeddingToImage,
  type EmbeddingItem,
  type InpaintInput,
  type InversionItem,
  type InversionOptions,
} from "./embedding-to-image.js";
export { decodeImage, decodeMask, encodePng, ImageInputError, resizeImage, type RgbImage } from "./image-io.js";
export { slerp, interpolationFraction } from "./slerp.js";
export { TextDiff, TextDiffError, transformEmbedding, type TextDiffItem } from "./text-diff.js";
export * from "./manipulation-defaults.js";
