import { describe, expect, it } from "vitest";
import { backProject, resizeBicubic } from "../src/back-project.js";

const ramp = (w: number, h: number) =>
  Float32Array.from({ length: w * h * 3 }, (_, i) => (Math.floor(i / 3) % w) * 7 + Math.floor(i / 3 / w) * 3 + (i % 3) * 11);

describe("resizeBicubic", () => {
  it("keeps a constant image constant, shrinking and enlarging", () => {
    const flat = new Float32Array(12 * 8 * 3).fill(93.5);
    for (const [w, h] of [
      [3, 2],
      [48, 32],
      [5, 9],
    ]) {
      const out = resizeBicubic(flat, 12, 8, w, h);
      expect(out.length).toBe(w * h * 3);
      for (const v of out) expect(v).toBeCloseTo(93.5, 4);
    }
  });

  it("reproduces a linear ramp inside the image when enlarging", () => {
    const out = resizeBicubic(ramp(8, 8), 8, 8, 32, 32);
    // at output (x, y) the source position is (x + 0.5) / 4 - 0.5; cubic convolution is exact on linear data
    for (const [x, y] of [
      [10, 12],
      [16, 16],
      [21, 9],
    ]) {
      const sx = (x + 0.5) / 4 - 0.5;
      const sy = (y + 0.5) / 4 - 0.5;
      expect(out[(y * 32 + x) * 3 + 1]).toBeCloseTo(sx * 7 + sy * 3 + 11, 3);
    }
  });
});

describe("backProject", () => {
  it("removes a brightness drift: the corrected output shrinks back to the input", () => {
    const input = Uint8Array.from(ramp(16, 16), (v) => Math.round(v) % 256);
    const truth = resizeBicubic(Float32Array.from(input), 16, 16, 64, 64);
    const drifted = truth.map((v, i) => v + 1.2 + 0.3 * Math.sin(i));
    const meanShrinkError = (out: Float32Array) => {
      const down = resizeBicubic(out, 64, 64, 16, 16);
      return down.reduce((s, v, i) => s + Math.abs(v - input[i]), 0) / down.length;
    };
    const before = meanShrinkError(drifted);
    backProject(input, 16, 16, drifted, 4, 1);
    const after = meanShrinkError(drifted);
    expect(before).toBeGreaterThan(1);
    expect(after).toBeLessThan(before / 5);
  });

  it("changes nothing when the output already shrinks back to the input", () => {
    const flat = new Uint8Array(8 * 8 * 3).fill(200);
    const output = new Float32Array(32 * 32 * 3).fill(200);
    backProject(flat, 8, 8, output, 4, 3);
    for (const v of output) expect(v).toBeCloseTo(200, 4);
  });
});
