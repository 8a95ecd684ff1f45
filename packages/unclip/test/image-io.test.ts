import { readFile } from "node:fs/promises";
import sharp from "sharp";
import { describe, expect, it } from "vitest";
import { decodeImage, decodeMask, encodePng, ImageInputError, resizeImage, type RgbImage } from "../src/image-io.js";

function pattern(width: number, height: number): RgbImage {
  const data = new Uint8Array(width * height * 3).map((_, i) => (i * 31 + (i >> 5)) % 256);
  return { width, height, data };
}

describe("image-io", () => {
  it("round-trips RGB through PNG exactly", async () => {
    const img = pattern(13, 7);
    const png = await encodePng(img, { compressionLevel: 1 });
    expect(Array.from(png.subarray(1, 4), (c) => String.fromCharCode(c)).join("")).toBe("PNG");
    expect(await decodeImage(png)).toEqual(img);
  });

  it("drops alpha, expands grey to RGB and reads JPEG", async () => {
    const rgba = await sharp(Buffer.from([10, 20, 30, 0, 40, 50, 60, 255]), { raw: { width: 2, height: 1, channels: 4 } })
      .png()
      .toBuffer();
    expect(Array.from((await decodeImage(rgba)).data)).toEqual([10, 20, 30, 40, 50, 60]);
    const grey = await sharp(Buffer.from([0, 128, 255]), { raw: { width: 3, height: 1, channels: 1 } })
      .png()
      .toBuffer();
    expect(Array.from((await decodeImage(grey)).data)).toEqual([0, 0, 0, 128, 128, 128, 255, 255, 255]);
    const jpeg = await sharp(Buffer.from(pattern(16, 8).data), { raw: { width: 16, height: 8, channels: 3 } })
      .jpeg()
      .toBuffer();
    const decoded = await decodeImage(jpeg);
    expect([decoded.width, decoded.height, decoded.data.length]).toEqual([16, 8, 16 * 8 * 3]);
  });

  it("refuses bytes that are not a PNG or JPEG image with a readable ImageInputError", async () => {
    await expect(decodeImage(new TextEncoder().encode("hello, this is not an image"))).rejects.toThrow(ImageInputError);
    await expect(decodeImage(new Uint8Array(0))).rejects.toThrow(/not a readable image.*PNG or JPEG/);
    const webp = await sharp(Buffer.from(pattern(4, 4).data), { raw: { width: 4, height: 4, channels: 3 } })
      .webp()
      .toBuffer();
    await expect(decodeImage(webp)).rejects.toThrow(/is a webp file; send a PNG or JPEG/);
    const png = await encodePng(pattern(8, 8));
    await expect(decodeImage(png.subarray(0, png.length / 2))).rejects.toThrow(ImageInputError);
  });

  it("decodes masks: white or transparent = repaint (0), the rest kept (1), resized to size", async () => {
    // left column white, right column black
    const bw = await sharp(Buffer.from([255, 0, 255, 0]), { raw: { width: 2, height: 2, channels: 1 } })
      .png()
      .toBuffer();
    expect(Array.from(await decodeMask(bw, 4))).toEqual([0, 0, 1, 1, 0, 0, 1, 1, 0, 0, 1, 1, 0, 0, 1, 1]);
    // top row transparent, bottom opaque (colours ignored)
    const alpha = await sharp(Buffer.from([255, 255, 255, 0, 0, 0, 0, 255]), { raw: { width: 1, height: 2, channels: 4 } })
      .png()
      .toBuffer();
    expect(Array.from(await decodeMask(alpha, 2))).toEqual([0, 0, 1, 1]);
    // an alpha channel that is opaque everywhere: white still marks the repaint region
    const opaque = await sharp(Buffer.from([255, 255, 255, 255, 0, 0, 0, 255]), { raw: { width: 2, height: 1, channels: 4 } })
      .png()
      .toBuffer();
    expect(Array.from(await decodeMask(opaque, 2))).toEqual([0, 1, 0, 1]);
    await expect(decodeMask(new Uint8Array([1, 2, 3]), 64)).rejects.toThrow(/mask/);
  });

  it("crops a non-square mask like the source, so it marks the same pixels of the square the decoder sees", async () => {
    // A 128×64 upload whose columns 64..95 are red; the mask marks exactly those columns (white = repaint).
    const source = pattern(128, 64);
    const mask = new Uint8Array(128 * 64);
    for (let p = 0; p < 128 * 64; p++) {
      const x = p % 128;
      if (x >= 64 && x < 96) {
        source.data.set([255, 0, 0], 3 * p);
        mask[p] = 255;
      }
    }
    const maskPng = await sharp(Buffer.from(mask), { raw: { width: 128, height: 64, channels: 1 } })
      .png()
      .toBuffer();
    const keep = await decodeMask(maskPng, 64);
    const square = await resizeImage(source, 64);
    // The centre crop keeps source columns 32..95, so the red band lands on columns 32..63: the right half.
    for (let p = 0; p < 64 * 64; p++) {
      const red = square.data[3 * p] === 255 && square.data[3 * p + 1] === 0 && square.data[3 * p + 2] === 0;
      expect({ p, repaint: keep[p] === 0 }).toEqual({ p, repaint: p % 64 >= 32 });
      expect({ p, red }).toEqual({ p, red: p % 64 >= 32 });
    }
  });

  it("resizes (centre crop for another aspect ratio)", async () => {
    const small = await resizeImage(pattern(40, 20), 8);
    expect([small.width, small.height, small.data.length]).toEqual([8, 8, 192]);
    const same = pattern(8, 8);
    expect(await resizeImage(same, 8)).toBe(same);
    const wide = await resizeImage(same, { width: 16, height: 4 });
    expect([wide.width, wide.height]).toEqual([16, 4]);
  });
});

describe("the ./image entry", () => {
  it("is exported separately and loads nothing but sharp (no onnxruntime in image-only processes)", async () => {
    const pkg = JSON.parse(await readFile(new URL("../package.json", import.meta.url), "utf8"));
    expect(pkg.exports["./image"]).toBe("./src/image-io.ts");
    const source = await readFile(new URL("../src/image-io.ts", import.meta.url), "utf8");
    const imports = [...source.matchAll(/^import .* from "([^"]+)";$/gm)].map((m) => m[1]);
    expect(imports).toEqual(["sharp"]);
  });
});
