import { describe, expect, it } from "vitest";
import type { SchedulerSection } from "../src/manifest.js";
import { createSampler, DDIMInverseSampler, DDIMSampler, DDPMSampler } from "../src/samplers.js";

// Reference numbers: /usr/bin/python3 test/reference/sampler_ref.py (numpy, float64, the formulas of docs/architecture.md §11
// written out independently of this code; inputs are float32-representable).
const decoderScheduler: SchedulerSection = {
  schedule: "squaredcos_cap_v2",
  trainTimesteps: 1000,
  prediction: "epsilon",
  variance: "learned_range",
  clipSample: 1,
};
const priorScheduler: SchedulerSection = { ...decoderScheduler, prediction: "sample", variance: "fixed_small_log", clipSample: 10 };

function expectClose(actual: Float32Array, expected: number[]) {
  expect(actual.length).toBe(expected.length);
  expected.forEach((value, i) => expect(actual[i]).toBeCloseTo(value, 5));
}

describe("DDPMSampler", () => {
  it("ε prediction, learned range, clamped x̂0, two items (case A)", () => {
    const sampler = new DDPMSampler(decoderScheduler, 2);
    sampler.setTimesteps(25);
    expect(sampler.timesteps[3]).toBe(874);
    const sample = Float32Array.of(0.5, -1.25, 2.0, 0.1);
    const output = Float32Array.of(0.3, -0.7, 0.9, -0.2, 1.5, 0.2, -3.0, 0.0);
    const noise = Float32Array.of(0.25, -1.5, 0.75, 1.0);
    const result = sampler.step(output, 874, 3, sample, noise);
    expect(result).toBe(sample);
    expectClose(result, [0.6455501777718771, -2.0076652188993194, 2.055019006424789, 0.6691990459725656]);
  });

  it("x0 prediction, fixed_small_log, clamp at ±10 (case B)", () => {
    const sampler = new DDPMSampler(priorScheduler, 3);
    sampler.setTimesteps(7);
    const result = sampler.step(
      Float32Array.of(12.0, -0.75, 0.5),
      999,
      0,
      Float32Array.of(1.0, -0.5, 0.25),
      Float32Array.of(0.5, -0.25, 2.0),
    );
    expectClose(result, [3.0566750337929323, -0.4346701907863015, 2.061356726221649]);
  });

  it("adds no noise at the last step (case C)", () => {
    const sampler = createSampler("ddpm", decoderScheduler, 2);
    sampler.setTimesteps(25);
    expect(sampler.needsNoise(24)).toBe(false);
    expect(sampler.needsNoise(23)).toBe(true);
    const result = sampler.step(Float32Array.of(0.1, -0.2, 0.5, 0.5), 0, 24, Float32Array.of(0.5, -0.3));
    expectClose(result, [0.49936778008910027, -0.29872112217327085]);
  });

  it("refuses a missing noise buffer, a wrong timestep and mis-sized outputs", () => {
    const sampler = new DDPMSampler(decoderScheduler, 2);
    sampler.setTimesteps(25);
    expect(() => sampler.step(new Float32Array(4), 999, 0, new Float32Array(2))).toThrow(/noise/);
    expect(() => sampler.step(new Float32Array(4), 998, 0, new Float32Array(2), new Float32Array(2))).toThrow(/timestep/);
    expect(() => sampler.step(new Float32Array(2), 999, 0, new Float32Array(2), new Float32Array(2))).toThrow(/model output/);
  });
});

describe("DDIMSampler", () => {
  it("ε prediction, ignores the variance channels (case D)", () => {
    const sampler = createSampler("ddim", decoderScheduler, 2);
    expect(sampler).toBeInstanceOf(DDIMSampler);
    sampler.setTimesteps(7);
    expect(sampler.needsNoise(0)).toBe(false);
    const result = sampler.step(Float32Array.of(0.2, -0.6, 0.9, -0.9), 666, 2, Float32Array.of(0.8, -0.4));
    expectClose(result, [0.8441385906906285, -0.2563570581679335]);
  });

  it("ends at the clamped x̂0", () => {
    const sampler = createSampler("ddim", priorScheduler, 2);
    sampler.setTimesteps(1);
    expectClose(sampler.step(Float32Array.of(11, -3), 999, 0, Float32Array.of(0, 0)), [10, -3]);
  });
});

describe("DDIMInverseSampler", () => {
  it("walks the timesteps upwards and refuses a wrong one", () => {
    const sampler = new DDIMInverseSampler(decoderScheduler, 2);
    sampler.setTimesteps(7);
    expect(sampler.timesteps).toEqual([0, 166, 333, 500, 666, 832, 999]);
    expect(sampler.needsNoise()).toBe(false);
    expect(() => sampler.step(new Float32Array(4), 166, 0, new Float32Array(2))).toThrow(/timestep/);
  });

  it("is undone by DDIMSampler when the model's ε does not change along the way", () => {
    // With an ε prediction that is the same at every sample and timestep, each inverse step is the exact inverse of
    // a DDIM step: inverting 10 steps then decoding 10 gives back the start, up to float32 rounding amplified by
    // 1/√ᾱ at the noisiest step.
    const x0 = Float32Array.of(0.5, -0.25, 0.9, -0.8);
    const eps = Float32Array.of(0.3, -1.2, 0.7, 0.1);
    const output = Float32Array.from([...eps, 0, 0, 0, 0]);
    const inverse = new DDIMInverseSampler(decoderScheduler, 4);
    const forward = new DDIMSampler(decoderScheduler, 4);
    inverse.setTimesteps(10);
    forward.setTimesteps(10);
    const x = Float32Array.from(x0);
    inverse.timesteps.forEach((t, k) => inverse.step(output, t, k, x));
    // At τ = 999 almost nothing of x0 is left (√ᾱ ≈ 5e-5): the latent is the noise.
    x.forEach((v, i) => expect(Math.abs(v - eps[i])).toBeLessThan(1e-4));
    forward.timesteps.forEach((t, k) => forward.step(output, t, k, x));
    x.forEach((v, i) => expect(Math.abs(v - x0[i])).toBeLessThan(1e-3));
  });
});
