export { DEFAULT_CACHE_ROOT, type EsrganManifest, type EsrganScale, type EsrganVariant, ensureEsrganBundle } from "./ensureEsrganBundle.js";
export { loadUpscaler } from "./loadUpscaler.js";
export { type UpscalerManifest, readUpscalerManifest } from "./readUpscalerManifest.js";
export type { LoadOptions, Log, RgbImage, UpscaleOptions, Upscaler } from "./types.js";
export { UpscalerError } from "./UpscalerError.js";
