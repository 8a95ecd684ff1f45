import { describe, expect, it } from "vitest";
import { status } from "@grpc/grpc-js";
import { Stage } from "@unclip/protocol";
import { upscaleRoute, validateCommon, validateJobId, validatePrompt } from "../src/request-validation.js";

describe("request validation", () => {
  it("trims prompts and counts characters, not UTF-16 units", () => {
    expect(validatePrompt("  a red circle ")).toBe("a red circle");
    expect(validatePrompt("🟥".repeat(500))).toHaveLength(1000);
    expect(() => validatePrompt("🟥".repeat(501))).toThrow(/501 characters/);
  });

  it("answers INVALID_ARGUMENT", () => {
    try {
      validatePrompt("");
    } catch (err) {
      expect((err as { code: number }).code).toBe(status.INVALID_ARGUMENT);
      return;
    }
    throw new Error("expected a refusal");
  });

  it("fills defaults: one image, 1024 px, a random non-zero seed", () => {
    const p = validateCommon({ numImages: 0, size: 0, seed: 0n });
    expect(p.numImages).toBe(1);
    expect(p.size).toBe(1024);
    expect(p.seed).toBeGreaterThan(0n);
    expect(p.urlTtlSeconds).toBe(3600);
    expect(validateCommon({ numImages: 2, size: 64, seed: 5n }).seed).toBe(5n);
  });

  it("routes to the requested size", () => {
    expect(upscaleRoute(64)).toEqual([]);
    expect(upscaleRoute(256)).toEqual([Stage.UPSCALE_256]);
    expect(upscaleRoute(1024)).toEqual([Stage.UPSCALE_256, Stage.UPSCALE_1024]);
  });

  it("accepts the farm's job ids only", () => {
    expect(validateJobId("5cbd4322-7369-4776-9dc0-e7507cd831d1")).toBe("5cbd4322-7369-4776-9dc0-e7507cd831d1");
    expect(() => validateJobId("../x")).toThrow(/not a job id/);
    expect(() => validateJobId("")).toThrow(/job_id is empty/);
  });
});
