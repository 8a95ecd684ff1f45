import { describe, expect, it } from "vitest";
import { applyGuidance } from "../src/guidance.js";

describe("applyGuidance", () => {
  it("guides the first guidedSize values of each row and copies the rest from cond", () => {
    // two items, rows of 4 values: [uncond0, uncond1, cond0, cond1]
    const batched = Float32Array.of(1, 2, 3, 4, 5, 6, 7, 8, 2, 4, 6, 8, 10, 12, 14, 16);
    const guided = applyGuidance(batched, 2, 3, 2);
    // uncond + 3·(cond − uncond) on values 0-1; values 2-3 are cond's
    expect(Array.from(guided)).toEqual([4, 8, 6, 8, 20, 24, 14, 16]);
  });

  it("guidance 1 returns cond", () => {
    const batched = Float32Array.of(1, 2, 5, 7);
    expect(Array.from(applyGuidance(batched, 1, 1, 2))).toEqual([5, 7]);
  });
});
