import type { RgbImage } from "../src/index.js";

/** A deterministic test picture with what tiling could break: gradients, hard edges, fine stripes and a disc. */
export function pattern(width: number, height: number, seed = 0): RgbImage {
  const data = new Uint8Array(width * height * 3);
  for (let y = 0; y < height; y++)
    for (let x = 0; x < width; x++) {
      const i = (y * width + x) * 3;
      const disc = (x - width / 2) ** 2 + (y - height / 2) ** 2 < (Math.min(width, height) / 3) ** 2;
      data[i] = Math.round((255 * x) / width);
      data[i + 1] = ((x + seed) >> 2) % 2 === 0 ? 220 : 30;
      data[i + 2] = disc ? 250 : Math.round((255 * y) / height);
    }
  return { width, height, data };
}

export function diff(a: RgbImage, b: RgbImage): { max: number; mean: number } {
  let max = 0;
  let sum = 0;
  for (let i = 0; i < a.data.length; i++) {
    const d = Math.abs(a.data[i] - b.data[i]);
    max = Math.max(max, d);
    sum += d;
  }
  return { max, mean: sum / a.data.length };
}
