// A side-by-side figure of the same square crop of several images (one outline seen through each upscaling method).
import type { RgbImage } from "@unclip/upscaler";
import sharp from "sharp";

export interface Panel {
  label: string;
  image: RgbImage;
}

const LABEL_HEIGHT = 24;
const GAP = 8;

const escapeXml = (text: string) => text.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;");

/** Writes `file`: the `size` × `size` crop with top-left corner (x, y) of every panel's image, labelled, left to right. */
export async function writeEdgeCrops(file: string, panels: Panel[], x: number, y: number, size: number): Promise<void> {
  const width = panels.length * (size + GAP) - GAP;
  const crops = await Promise.all(
    panels.map(({ image }) =>
      sharp(image.data, { raw: { width: image.width, height: image.height, channels: 3 } })
        .extract({ left: x, top: y, width: size, height: size })
        .png()
        .toBuffer(),
    ),
  );
  const labels = Buffer.from(
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${LABEL_HEIGHT}">${panels
      .map(
        ({ label }, i) =>
          `<text x="${i * (size + GAP) + size / 2}" y="17" text-anchor="middle" font-family="DejaVu Sans, sans-serif" font-size="12">${escapeXml(label)}</text>`,
      )
      .join("")}</svg>`,
  );
  await sharp({ create: { width, height: size + LABEL_HEIGHT, channels: 3, background: "#ffffff" } })
    .composite([{ input: labels, left: 0, top: 0 }, ...crops.map((input, i) => ({ input, left: i * (size + GAP), top: LABEL_HEIGHT }))])
    .png()
    .toFile(file);
}
