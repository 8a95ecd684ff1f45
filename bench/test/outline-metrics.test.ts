import type { RgbImage } from "@unclip/upscaler";
import { describe, expect, it } from "vitest";
import { circleDistance, edgeRoughness, objectColours, objectness, straightEdgeDeviation, traceOutline } from "../outline-metrics.js";

const BG = [245, 245, 245] as const;
const FG = [30, 70, 220] as const;

/** A size-px image of the shape `inside(x, y)` (image pixel units), anti-aliased by ss × ss supersampling. */
function render(size: number, inside: (x: number, y: number) => boolean, ss: number): RgbImage {
  const data = new Uint8Array(size * size * 3);
  for (let y = 0; y < size; y++)
    for (let x = 0; x < size; x++) {
      let hits = 0;
      for (let j = 0; j < ss; j++) for (let i = 0; i < ss; i++) hits += +inside(x + (i + 0.5) / ss, y + (j + 0.5) / ss);
      for (let c = 0; c < 3; c++) data[(y * size + x) * 3 + c] = Math.round(BG[c] + (hits / (ss * ss)) * (FG[c] - BG[c]));
    }
  return { width: size, height: size, data };
}

/** Nearest-neighbour enlargement by `k`: every pixel becomes a k × k block, the staircase the farm's 1024 px circles show. */
function nearest(image: RgbImage, k: number): RgbImage {
  const width = image.width * k;
  const data = new Uint8Array(width * width * 3);
  for (let y = 0; y < width; y++)
    for (let x = 0; x < width; x++) {
      const from = (Math.floor(y / k) * image.width + Math.floor(x / k)) * 3;
      data.set(image.data.subarray(from, from + 3), (y * width + x) * 3);
    }
  return { width, height: width, data };
}

const outlineOf = (image: RgbImage, colourSource = image) =>
  traceOutline(objectness(image, objectColours(colourSource)), image.width, image.height);

// World units: a 32 px scene enlarged 16x to 512 px, like a 64 px scene's quarter at 1024.
const disc = (cx: number, cy: number, r: number) => (x: number, y: number) => (x - cx) ** 2 + (y - cy) ** 2 <= r * r;
const square = (cx: number, cy: number, half: number) => (x: number, y: number) => Math.abs(x - cx) <= half && Math.abs(y - cy) <= half;
// the world's triangle (models/train/world.py): apex up at cy - r, base at cy + 0.8 r, half-width r at the base
const triangle = (cx: number, cy: number, r: number) => (x: number, y: number) =>
  y - cy >= -r && y - cy <= 0.8 * r && Math.abs(x - cx) <= (y - cy + r) / 1.8;
const scaled = (inside: (x: number, y: number) => boolean, k: number) => (x: number, y: number) => inside(x / k, y / k);

describe("objectColours", () => {
  it("reads the background from the border and the object from the pixels far from it", () => {
    const colours = objectColours(render(32, disc(15.3, 16.1, 9.2), 1));
    expect(colours).toEqual({ bg: BG, object: FG });
  });
});

describe("edgeRoughness and circleDistance", () => {
  it("score an anti-aliased disc under 0.2 px", () => {
    const outline = outlineOf(render(512, scaled(disc(15.3, 16.1, 9.2), 16), 4));
    expect(edgeRoughness(outline)).toBeLessThan(0.2);
    expect(circleDistance(outline)).toBeLessThan(0.2);
  });

  it("score a 16x nearest-neighbour staircase disc over 2 px", () => {
    const small = render(32, disc(15.3, 16.1, 9.2), 1);
    const outline = outlineOf(nearest(small, 16), small);
    expect(edgeRoughness(outline)).toBeGreaterThan(2);
    expect(circleDistance(outline)).toBeGreaterThan(2);
  });

  it("see the low-frequency shape of an ellipse in the circle distance, not in the roughness", () => {
    const ellipse = (x: number, y: number) => ((x - 256) / 200) ** 2 + ((y - 256) / 150) ** 2 <= 1;
    const outline = outlineOf(render(512, ellipse, 4));
    expect(edgeRoughness(outline)).toBeLessThan(0.3);
    // r(θ) of a 200 × 150 ellipse is about 175 + 25 cos 2θ: 25 / √2 = 17.7 px RMS from the best circle
    expect(circleDistance(outline)).toBeGreaterThan(16);
    expect(circleDistance(outline)).toBeLessThan(19);
  });

  it("leave out rays cut by the image border, and give up when most are", () => {
    const clipped = traceOutline(objectness(render(256, disc(40, 128, 100), 4), { bg: BG, object: FG }), 256, 256);
    expect(clipped.radius.some(Number.isNaN)).toBe(true);
    expect(Number.isNaN(edgeRoughness(clipped))).toBe(false);
    const mostlyOut = traceOutline(objectness(render(256, disc(128, 128, 300), 2), { bg: BG, object: FG }), 256, 256);
    expect(edgeRoughness(mostlyOut)).toBeNaN();
  });
});

describe("straightEdgeDeviation", () => {
  it("scores an anti-aliased square and triangle about 0", () => {
    expect(straightEdgeDeviation(outlineOf(render(512, scaled(square(16.4, 15.2, 0.85 * 11), 16), 4)), 4)).toBeLessThan(0.1);
    expect(straightEdgeDeviation(outlineOf(render(512, scaled(triangle(16.4, 15.2, 11), 16), 4)), 3)).toBeLessThan(0.15);
  });

  it("scores a 16x staircase triangle over 2 px, and a pixel-aligned square about 0", () => {
    const small = render(32, triangle(16.4, 15.2, 11), 1);
    expect(straightEdgeDeviation(outlineOf(nearest(small, 16), small), 3)).toBeGreaterThan(2);
    const blocky = render(32, square(16, 16, 8), 1);
    expect(straightEdgeDeviation(outlineOf(nearest(blocky, 16), blocky), 4)).toBeLessThan(0.1);
  });

  it("measures the bow of a bulging side", () => {
    // The top side of a square bulges out along a parabola, 12 px in the middle. Over the kept middle 70 % of the side
    // (u in ±0.7 of its half-length) a line leaves 12 · sd(u²) = 12 · 0.146 = 1.75 px RMS; pooled with three straight
    // sides of as many points, about 1.75 / 2 = 0.87 px.
    const bulge = (x: number, y: number) => square(256, 256, 150)(x, y) || (y < 106 && y >= 106 - 12 * (1 - ((x - 256) / 150) ** 2));
    const deviation = straightEdgeDeviation(outlineOf(render(512, bulge, 2)), 4);
    expect(deviation).toBeGreaterThan(0.7);
    expect(deviation).toBeLessThan(1);
  });
});
