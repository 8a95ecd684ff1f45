import sharp from "sharp";

/** 8-bit RGB, interleaved, row-major. */
export interface RgbImage {
  width: number;
  height: number;
  data: Uint8Array;
}

/** Bytes a person sent that cannot be used as an image; the message is meant for that person. */
export class ImageInputError extends Error {
  override name = "ImageInputError";
}

const ACCEPTED_FORMATS = new Set(["png", "jpeg"]);

async function decodeRaw(bytes: Uint8Array, what: string): Promise<{ data: Buffer; info: { width: number; height: number } }> {
  let format: string | undefined;
  try {
    ({ format } = await sharp(bytes).metadata());
  } catch {
    throw new ImageInputError(`the ${what} is not a readable image (${bytes.length} bytes); send a PNG or JPEG file`);
  }
  if (!format || !ACCEPTED_FORMATS.has(format)) {
    throw new ImageInputError(`the ${what} is a ${format ?? "unknown"} file; send a PNG or JPEG file`);
  }
  try {
    const { data, info } = await sharp(bytes).toColourspace("srgb").ensureAlpha().raw().toBuffer({ resolveWithObject: true });
    return { data, info };
  } catch (cause) {
    throw new ImageInputError(`the ${what} could not be decoded (${(cause as Error).message}); send an intact PNG or JPEG file`, {
      cause,
    });
  }
}

/** Decodes PNG or JPEG bytes to RGB; transparency is dropped. */
export async function decodeImage(bytes: Uint8Array): Promise<RgbImage> {
  const { data, info } = await decodeRaw(bytes, "image");
  return { width: info.width, height: info.height, data: dropAlpha(data, info.width * info.height) };
}

/**
 * Decodes an edit mask to a keep-mask of size×size (1 = keep the source pixel, 0 = repaint). Transparent pixels
 * (alpha < 128) mark the region to repaint when the mask has any; otherwise white pixels (luma ≥ 128) do. The mask is
 * centre-cropped to a square exactly as resizeImage crops the source, so on a non-square image it marks the same
 * pixels of the cropped region as it does of the upload (stretching it instead would shift the region sideways).
 */
export async function decodeMask(bytes: Uint8Array, size: number): Promise<Uint8Array> {
  const { data, info } = await decodeRaw(bytes, "mask");
  const resized = await sharp(data, { raw: { width: info.width, height: info.height, channels: 4 } })
    .resize(size, size, { fit: "cover", position: "centre", kernel: "nearest" })
    .raw()
    .toBuffer();
  const keep = new Uint8Array(size * size);
  let transparent = false;
  for (let p = 0; p < keep.length && !transparent; p++) transparent = resized[4 * p + 3] < 128;
  for (let p = 0; p < keep.length; p++) {
    const repaint = transparent
      ? resized[4 * p + 3] < 128
      : 0.299 * resized[4 * p] + 0.587 * resized[4 * p + 1] + 0.114 * resized[4 * p + 2] >= 128;
    keep[p] = repaint ? 0 : 1;
  }
  return keep;
}

/** Scales to size×size (or width×height), centre-cropping when the aspect ratio differs (CLIP's preprocessing). */
export async function resizeImage(img: RgbImage, size: number | { width: number; height: number }): Promise<RgbImage> {
  const { width, height } = typeof size === "number" ? { width: size, height: size } : size;
  if (img.width === width && img.height === height) return img;
  const data = await sharp(img.data, { raw: { width: img.width, height: img.height, channels: 3 } })
    .resize(width, height, { fit: "cover", position: "centre" })
    .raw()
    .toBuffer();
  return { width, height, data: new Uint8Array(data.buffer, data.byteOffset, data.length) };
}

export async function encodePng(img: RgbImage, options: { compressionLevel?: number } = {}): Promise<Uint8Array> {
  const png = await sharp(img.data, { raw: { width: img.width, height: img.height, channels: 3 } })
    .png({ compressionLevel: options.compressionLevel ?? 6 })
    .toBuffer();
  return new Uint8Array(png.buffer, png.byteOffset, png.length);
}

function dropAlpha(rgba: Uint8Array, pixels: number): Uint8Array {
  const rgb = new Uint8Array(pixels * 3);
  for (let p = 0; p < pixels; p++) {
    rgb[3 * p] = rgba[4 * p];
    rgb[3 * p + 1] = rgba[4 * p + 1];
    rgb[3 * p + 2] = rgba[4 * p + 2];
  }
  return rgb;
}
