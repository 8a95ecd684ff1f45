import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { status, type ServiceError } from "@grpc/grpc-js";
import { create, CreateVariationsRequestSchema, SamplingOptionsSchema } from "@unclip/protocol";
import { collect, generateRequest, startTestFarm, terminal } from "./farm-fixture.js";

let env: Awaited<ReturnType<typeof startTestFarm>>;
beforeAll(async () => {
  env = await startTestFarm();
});
afterAll(async () => {
  await env?.stop();
});

async function statusOf(run: () => Promise<unknown>): Promise<{ code: number; details: string }> {
  try {
    await run();
  } catch (err) {
    const e = err as ServiceError;
    return { code: e.code, details: e.details };
  }
  throw new Error("expected the call to fail");
}

describe("bad input gets a clear gRPC status and the farm keeps serving", () => {
  const cases: [string, Parameters<typeof generateRequest>, RegExp][] = [
    ["empty prompt", ["   "], /prompt is empty/],
    ["over-long prompt", ["x".repeat(501)], /501 characters; the limit is 500/],
    ["control characters", ["a red\u0001circle"], /control characters/],
    ["too many images", ["a cat", { numImages: 9 }], /ask for 1 to 8 images/],
    ["unknown size", ["a cat", { size: 512 }], /size 512 is not offered/],
    ["absurd steps", ["a cat", { sampling: create(SamplingOptionsSchema, { decoderSteps: 100000 }) }], /decoder_steps is 100000/],
    ["negative guidance", ["a cat", { sampling: create(SamplingOptionsSchema, { priorGuidance: -3 }) }], /prior_guidance is -3/],
    ["NaN guidance", ["a cat", { sampling: create(SamplingOptionsSchema, { decoderGuidance: Number.NaN }) }], /decoder_guidance is NaN/],
    ["unknown sampler", ["a cat", { sampling: create(SamplingOptionsSchema, { sampler: "euler" }) }], /sampler "euler" is unknown/],
  ];
  for (const [name, args, message] of cases) {
    it(`refuses ${name} with INVALID_ARGUMENT`, async () => {
      const s = await statusOf(() => collect(env.client.generate(generateRequest(...args))));
      expect(s.code).toBe(status.INVALID_ARGUMENT);
      expect(s.details).toMatch(message);
    });
  }

  it("refuses uploads that are not images", async () => {
    const s = await statusOf(() =>
      collect(env.client.createVariations(create(CreateVariationsRequestSchema, { image: new TextEncoder().encode("not a png") }))),
    );
    expect(s.code).toBe(status.INVALID_ARGUMENT);
    expect(s.details).toMatch(/image is not a readable image/);
  });

  it("answers NOT_FOUND for unknown job ids and INVALID_ARGUMENT for malformed ones", async () => {
    const missing = await statusOf(() => env.client.getJob("00000000-0000-4000-8000-000000000000"));
    expect(missing.code).toBe(status.NOT_FOUND);
    expect(missing.details).toMatch(/does not exist/);
    const malformed = await statusOf(() => env.client.getJob("../../etc/passwd"));
    expect(malformed.code).toBe(status.INVALID_ARGUMENT);
    const cancelMissing = await statusOf(() => env.client.cancelJob("00000000-0000-4000-8000-000000000001"));
    expect(cancelMissing.code).toBe(status.NOT_FOUND);
  });

  it("still serves a valid request after all of that", async () => {
    const events = await collect(env.client.generate(generateRequest("a white cross")));
    expect(terminal(events).case).toBe("completed");
    // No process crashed along the way: each is still its first (or added) process.
    for (const s of env.farm.services()) {
      expect(s.current.child.exitCode, s.name).toBeNull();
      expect(s.restarts, s.name).toBe(0);
    }
  });
});
