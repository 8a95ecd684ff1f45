/** A TF.js model that this converter cannot translate faithfully; the message names the layer and the option. */
export class ConversionError extends Error {
  override name = "ConversionError";
  constructor(
    message: string,
    readonly layer?: string,
    options?: ErrorOptions,
  ) {
    super(layer === undefined ? message : `layer "${layer}": ${message}`, options);
  }
}
