import { describe, expect, it } from "vitest";
import { respacedTimesteps, roundHalfEven, squaredcosCapV2 } from "../src/schedule.js";

describe("respacedTimesteps", () => {
  it("matches numpy's np.round(np.linspace(0, 999, 25))[::-1]", () => {
    expect(respacedTimesteps(25)).toEqual([
      999, 957, 916, 874, 832, 791, 749, 708, 666, 624, 583, 541, 500, 458, 416, 375, 333, 291, 250, 208, 166, 125, 83, 42, 0,
    ]);
  });

  it("rounds halves to even (n=7 hits 166.5 and 832.5)", () => {
    expect(respacedTimesteps(7)).toEqual([999, 832, 666, 500, 333, 166, 0]);
  });

  it("multiplies the float step as numpy does (n=27: 13·(999/26) lands just under 499.5)", () => {
    // /usr/bin/python3 -c "import numpy as np; print(np.round(np.linspace(0,999,27)).astype(int)[::-1].tolist())"
    expect(respacedTimesteps(27)).toEqual([
      999, 961, 922, 884, 845, 807, 768, 730, 692, 653, 615, 576, 538, 499, 461, 423, 384, 346, 307, 269, 231, 192, 154, 115, 77, 38, 0,
    ]);
  });

  it("gives [999] for one step and refuses nonsense", () => {
    expect(respacedTimesteps(1)).toEqual([999]);
    expect(() => respacedTimesteps(0)).toThrow(RangeError);
    expect(() => respacedTimesteps(2.5)).toThrow(RangeError);
    expect(() => respacedTimesteps(1001)).toThrow(RangeError);
  });

  it("roundHalfEven", () => {
    expect([0.5, 1.5, 2.5, -1.5, 2.4999, 2.5001].map(roundHalfEven)).toEqual([0, 2, 2, -2, 2, 3]);
  });
});

describe("squaredcosCapV2", () => {
  it("matches the numpy reference (test/reference/sampler_ref.py)", () => {
    const { betas, alphasCumprod } = squaredcosCapV2(1000);
    expect(betas.length).toBe(1000);
    expect(betas[999]).toBe(0.999);
    expect(alphasCumprod[999]).toBeCloseTo(2.4287669070348484e-9, 20);
    expect(alphasCumprod[500]).toBeCloseTo(0.49228517244880227, 14);
    expect(alphasCumprod[0]).toBeCloseTo(0.999958715775178, 14);
  });
});
