import { existsSync } from "node:fs";
import { createRequire } from "node:module";
import path from "node:path";
import type { RgbImage } from "@unclip/upscaler";
import sharp from "sharp";

export interface TestImage {
  name: string;
  image: RgbImage;
}

export async function rgb(input: Buffer | string): Promise<RgbImage> {
  const { data, info } = await sharp(input).flatten({ background: "#ffffff" }).removeAlpha().raw().toBuffer({ resolveWithObject: true });
  return { width: info.width, height: info.height, data: new Uint8Array(data.buffer, data.byteOffset, data.length) };
}

async function resize(image: RgbImage, width: number, height: number, kernel: "cubic" | "nearest"): Promise<RgbImage> {
  const data = await sharp(image.data, { raw: { width: image.width, height: image.height, channels: 3 } })
    .resize(width, height, { kernel, fit: "fill" })
    .raw()
    .toBuffer();
  return { width, height, data: new Uint8Array(data.buffer, data.byteOffset, data.length) };
}

/** Resizes with libvips' cubic kernel (Catmull-Rom), antialiased when shrinking: "plain bicubic". */
export const bicubic = (image: RgbImage, width: number, height: number) => resize(image, width, height, "cubic");

/** Resizes by repeating (or dropping) pixels: enlarging by k turns each pixel into a k × k block. */
export const nearest = (image: RgbImage, width: number, height: number) => resize(image, width, height, "nearest");

/** The photo the ESRGAN packages ship (128 x 128; their samples/ are the model's own outputs, so not used here). */
export async function packagedPhoto(): Promise<TestImage> {
  const require = createRequire(import.meta.url);
  const pkg = "@upscalerjs/esrgan-slim";
  const dir = (require.resolve.paths(pkg) ?? [])
    .map((d) => path.join(d, pkg))
    .find((d) => existsSync(path.join(d, "assets", "fixture.png")));
  if (!dir) throw new Error(`${pkg} is not installed`);
  return { name: "photo (flower, npm asset)", image: await rgb(path.join(dir, "assets", "fixture.png")) };
}

const svg = (size: number, body: string) =>
  Buffer.from(`<svg xmlns="http://www.w3.org/2000/svg" width="${size}" height="${size}" viewBox="0 0 256 256">${body}</svg>`);

/** Content the project renders itself at `size` px, so the reference really has that resolution. */
export async function generatedImages(size: number): Promise<TestImage[]> {
  const text = svg(
    size,
    `<rect width="256" height="256" fill="#fdfcf7"/>
     <text x="10" y="40" font-family="DejaVu Sans, sans-serif" font-size="28" fill="#111">unCLIP farm</text>
     <text x="10" y="80" font-family="DejaVu Serif, serif" font-size="18" fill="#203060">The quick brown fox jumps</text>
     <text x="10" y="110" font-family="DejaVu Sans Mono, monospace" font-size="14" fill="#600">upscale(64 -> 256 -> 1024)</text>
     <text x="10" y="150" font-family="DejaVu Sans, sans-serif" font-size="11" fill="#333">Small print: 0123456789 abcdefghijklmnop</text>
     <text x="10" y="200" font-family="DejaVu Serif, serif" font-size="40" font-weight="bold" fill="#0a5">Aa Bb Gg</text>
     <text x="10" y="240" font-family="DejaVu Sans, sans-serif" font-size="16" fill="#fff" stroke="#000" stroke-width="0.6">outlined letters</text>`,
  );
  const edges = svg(
    size,
    `<rect width="256" height="256" fill="#e8e8e8"/>
     <rect x="20" y="20" width="90" height="60" fill="#c01020"/>
     <circle cx="180" cy="60" r="45" fill="#1040c0"/>
     <polygon points="30,240 120,120 200,240" fill="#20a040" stroke="#000" stroke-width="3"/>
     ${Array.from({ length: 12 }, (_, i) => `<line x1="130" y1="${120 + i * 10}" x2="250" y2="${100 + i * 13}" stroke="#000" stroke-width="${1 + (i % 3)}"/>`).join("")}
     ${Array.from({ length: 8 }, (_, i) => `<rect x="${140 + (i % 4) * 28}" y="${180 + Math.floor(i / 4) * 28}" width="14" height="14" fill="#222"/>`).join("")}`,
  );
  const gradients = svg(
    size,
    `<defs>
       <linearGradient id="l" x1="0" y1="0" x2="1" y2="1"><stop offset="0" stop-color="#ff8a00"/><stop offset="0.5" stop-color="#e52e71"/><stop offset="1" stop-color="#2a2aff"/></linearGradient>
       <radialGradient id="r" cx="0.5" cy="0.5" r="0.5"><stop offset="0" stop-color="#ffffff" stop-opacity="0.9"/><stop offset="1" stop-color="#ffffff" stop-opacity="0"/></radialGradient>
     </defs>
     <rect width="256" height="256" fill="url(#l)"/><circle cx="150" cy="110" r="100" fill="url(#r)"/>`,
  );
  const rendered = await Promise.all([text, edges, gradients].map((s) => rgb(s)));
  return [
    { name: "text (SVG)", image: rendered[0] },
    { name: "edges & lines (SVG)", image: rendered[1] },
    { name: "smooth gradients (SVG)", image: rendered[2] },
    { name: "texture (value noise)", image: valueNoise(size) },
  ];
}

/** Multi-octave value noise: irregular natural-looking texture, the same at any size (hashed, not random). */
function valueNoise(size: number): RgbImage {
  const hash = (x: number, y: number, o: number) => {
    let h = Math.imul(x, 374761393) + Math.imul(y, 668265263) + Math.imul(o, 2147483647);
    h = Math.imul(h ^ (h >>> 13), 1274126177);
    return ((h ^ (h >>> 16)) >>> 0) / 4294967296;
  };
  const smooth = (t: number) => t * t * (3 - 2 * t);
  const data = new Uint8Array(size * size * 3);
  for (let y = 0; y < size; y++)
    for (let x = 0; x < size; x++) {
      let v = 0;
      let amplitude = 0.5;
      for (let octave = 0, cells = 4; octave < 5; octave++, cells *= 2, amplitude /= 2) {
        const fx = (x / size) * cells;
        const fy = (y / size) * cells;
        const [ix, iy] = [Math.floor(fx), Math.floor(fy)];
        const [tx, ty] = [smooth(fx - ix), smooth(fy - iy)];
        const top = hash(ix, iy, octave) * (1 - tx) + hash(ix + 1, iy, octave) * tx;
        const bottom = hash(ix, iy + 1, octave) * (1 - tx) + hash(ix + 1, iy + 1, octave) * tx;
        v += amplitude * (top * (1 - ty) + bottom * ty);
      }
      const i = (y * size + x) * 3;
      data[i] = Math.round(255 * Math.min(1, v * 1.1));
      data[i + 1] = Math.round(200 * v);
      data[i + 2] = Math.round(120 * (1 - v) + 40);
    }
  return { width: size, height: size, data };
}
