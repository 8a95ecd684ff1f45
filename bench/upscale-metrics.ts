import type { RgbImage } from "@unclip/upscaler";

/** BT.601 luma, the channel super-resolution papers score on, with `border` pixels cropped on every side. */
function luma(image: RgbImage, border: number): { data: Float64Array; width: number; height: number } {
  const width = image.width - 2 * border;
  const height = image.height - 2 * border;
  const data = new Float64Array(width * height);
  for (let y = 0; y < height; y++)
    for (let x = 0; x < width; x++) {
      const i = ((y + border) * image.width + x + border) * 3;
      data[y * width + x] = 16 + (65.481 * image.data[i] + 128.553 * image.data[i + 1] + 24.966 * image.data[i + 2]) / 255;
    }
  return { data, width, height };
}

/** PSNR in dB on luma (border cropped by `scale`, as is usual for x`scale` super-resolution). */
export function psnr(reference: RgbImage, test: RgbImage, border: number): number {
  const a = luma(reference, border).data;
  const b = luma(test, border).data;
  let sum = 0;
  for (let i = 0; i < a.length; i++) sum += (a[i] - b[i]) ** 2;
  const mse = sum / a.length;
  return mse === 0 ? Infinity : 10 * Math.log10((255 * 255) / mse);
}

/** Mean SSIM on luma with the usual 11x11 Gaussian window (sigma 1.5), K1 = 0.01, K2 = 0.03. */
export function ssim(reference: RgbImage, test: RgbImage, border: number): number {
  const a = luma(reference, border);
  const b = luma(test, border).data;
  const { width, height } = a;
  const radius = 5;
  const kernel = Array.from({ length: 2 * radius + 1 }, (_, i) => Math.exp(-((i - radius) ** 2) / (2 * 1.5 * 1.5)));
  const norm = kernel.reduce((s, k) => s + k, 0);
  const k = kernel.map((v) => v / norm);
  // Separable blur of the five moments, valid region only.
  const blur = (f: Float64Array) => {
    const rows = new Float64Array(width * height);
    for (let y = 0; y < height; y++)
      for (let x = radius; x < width - radius; x++) {
        let s = 0;
        for (let d = -radius; d <= radius; d++) s += k[d + radius] * f[y * width + x + d];
        rows[y * width + x] = s;
      }
    const out = new Float64Array(width * height);
    for (let y = radius; y < height - radius; y++)
      for (let x = radius; x < width - radius; x++) {
        let s = 0;
        for (let d = -radius; d <= radius; d++) s += k[d + radius] * rows[(y + d) * width + x];
        out[y * width + x] = s;
      }
    return out;
  };
  const x = a.data;
  // The moments as arrays, not callbacks: a call per tap took twice the time at 1024 px.
  const product = (p: Float64Array, q: Float64Array) => {
    const out = new Float64Array(p.length);
    for (let i = 0; i < p.length; i++) out[i] = p[i] * q[i];
    return out;
  };
  const mx = blur(x);
  const my = blur(b);
  const xx = blur(product(x, x));
  const yy = blur(product(b, b));
  const xy = blur(product(x, b));
  const c1 = (0.01 * 255) ** 2;
  const c2 = (0.03 * 255) ** 2;
  let sum = 0;
  let count = 0;
  for (let y = radius; y < height - radius; y++)
    for (let xi = radius; xi < width - radius; xi++) {
      const i = y * width + xi;
      const vx = xx[i] - mx[i] ** 2;
      const vy = yy[i] - my[i] ** 2;
      const cov = xy[i] - mx[i] * my[i];
      sum += ((2 * mx[i] * my[i] + c1) * (2 * cov + c2)) / ((mx[i] ** 2 + my[i] ** 2 + c1) * (vx + vy + c2));
      count++;
    }
  return sum / count;
}
