import { describe, expect, it } from "vitest";
import { FarmError, GrpcStatus } from "@unclip/core";
import { create, StageTaskSchema } from "@unclip/protocol";
import type { Upscaler } from "@unclip/upscaler";
import { UpscalerRoutes } from "../src/upscaler-routes.js";

/** Only what the routes read of an upscaler: its name and the decoders it is for. */
const upscaler = (bundle: string, decoders: string[] = []) => ({ bundle, decoders }) as unknown as Upscaler;
const task = (...bundles: string[]) => create(StageTaskSchema, { bundles });

describe("UpscalerRoutes", () => {
  const shapes = upscaler("shapes-upsamplers@1.0.0", ["shapes-v1"]);
  const esrgan = upscaler("esrgan-slim-x4@1.0.0");

  it("sends a decoder's images to the upscaler made for it, whatever the order, and the rest to the generic one", () => {
    for (const list of [
      [shapes, esrgan],
      [esrgan, shapes],
    ]) {
      const routes = new UpscalerRoutes(list);
      expect(routes.upscalerFor(task("prior=shapes-v1@1.5.0", "decoder=shapes-v1@1.5.0"))).toBe(shapes);
      expect(routes.upscalerFor(task("prior=tiny-random@0.1.0", "decoder=tiny-random@0.1.0"))).toBe(esrgan);
      expect(routes.upscalerFor(task())).toBe(esrgan);
    }
  });

  it("refuses, for good, images no upscaler of the worker serves", () => {
    const routes = new UpscalerRoutes([shapes]);
    expect(routes.indexFor(task("decoder=tiny-random@0.1.0"))).toBe(-1);
    let error: unknown;
    try {
      routes.upscalerFor(task("decoder=tiny-random@0.1.0"));
    } catch (err) {
      error = err;
    }
    expect(error).toBeInstanceOf(FarmError);
    expect(error).toMatchObject({ code: GrpcStatus.FAILED_PRECONDITION, retryable: false });
    expect((error as Error).message).toMatch(
      /decoder bundle tiny-random: it has shapes-upsamplers@1\.0\.0 \(for shapes-v1\) and no generic one/,
    );
  });
});
