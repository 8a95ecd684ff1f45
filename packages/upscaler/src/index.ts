export {
  DEFAULT_CACHE_ROOT,
  type EsrganManifest,
  type EsrganScale,
  type EsrganVariant,
  ensureEsrganBundle,
} from "./ensure-esrgan-bundle.js";
export { loadUpscaler } from "./load-upscaler.js";
export { type UpscalerManifest, readUpscalerManifest } from "./read-upscaler-manifest.js";
export type { LoadOptions, Log, RgbImage, UpscaleOptions, Upscaler } from "./types.js";
export { UpscalerError } from "./upscaler-error.js";
