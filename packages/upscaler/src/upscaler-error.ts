/** A bundle or an input the upscaler cannot use; the message says which and why. */
export class UpscalerError extends Error {
  override name = "UpscalerError";
}
