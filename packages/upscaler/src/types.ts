import type { SessionThreading } from "@unclip/unclip/session-threading";

/** An 8-bit RGB image, pixels interleaved row by row (r, g, b, r, g, b, ...). */
export interface RgbImage {
  width: number;
  height: number;
  data: Uint8Array;
}

export interface UpscaleOptions {
  /**
   * Largest input side run in one pass (default 128). Larger images are cut into tiles of this size that overlap by
   * `overlap` pixels and are blended back, so memory depends on the tile size, not the image size.
   */
  tileSize?: number;
  /** Overlap of neighbouring tiles in input pixels (default 16), blended with a linear ramp. */
  overlap?: number;
  /** Tiles run per ONNX batch (default 4); bounds memory together with tileSize. */
  tileBatch?: number;
  /**
   * Back-projection iterations (default 1; 0 returns the raw network output): each one adds the bicubic upscale of (input - bicubic downscale of the
   * output), so that the output shrinks back to the input and the network's low-frequency drift is removed.
   */
  backProjection?: number;
  signal?: AbortSignal;
}

export interface Upscaler {
  readonly scale: number;
  /** name@version of the bundle, for results and metrics. */
  readonly bundle: string;
  /** The execution provider the session really runs on (cuda may have been asked for and be missing). */
  readonly provider: "cpu" | "cuda";
  /** The decoder bundles (names) this upscaler was made for; empty for a generic upscaler. */
  readonly decoders: readonly string[];
  /** The bundle's own tile size and back-projection, where its manifest sets them (else the caller's defaults). */
  readonly settings: Readonly<Pick<UpscaleOptions, "tileSize" | "backProjection">>;
  /** Returns each image `scale` times larger, in input order. Same-sized images run as one batch. */
  upscale(images: RgbImage[], options?: UpscaleOptions): Promise<RgbImage[]>;
  close(): Promise<void>;
}

export type Log = (msg: string, fields?: object) => void;

export interface LoadOptions extends SessionThreading {
  executionProvider: "cpu" | "cuda";
  log?: Log;
}
