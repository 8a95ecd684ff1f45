import { describe, expect, it } from "vitest";
import { Stage, stageName, stageOutputSize, stagePool } from "../src/index.js";

describe("stages", () => {
  it("maps each stage to the pool that serves it", () => {
    expect(
      [Stage.PRIOR, Stage.IMAGE_ENCODE, Stage.INTERPOLATE_EMBED, Stage.TEXT_DIFF, Stage.DECODER, Stage.UPSCALE_256, Stage.UPSCALE_1024].map(
        stagePool,
      ),
    ).toEqual(["prior", "prior", "prior", "prior", "decoder", "upscale", "upscale"]);
    expect(() => stagePool(Stage.UNSPECIFIED)).toThrow(/no worker pool/);
  });

  it("names stages for labels and keys, and knows the image size each one writes", () => {
    expect(stageName(Stage.UPSCALE_1024)).toBe("upscale-1024");
    expect(stageName(Stage.IMAGE_ENCODE)).toBe("image-encode");
    expect([Stage.INTERPOLATE_EMBED, Stage.TEXT_DIFF].map(stageName)).toEqual(["interpolate-embed", "text-diff"]);
    expect([Stage.PRIOR, Stage.DECODER, Stage.UPSCALE_256, Stage.UPSCALE_1024].map(stageOutputSize)).toEqual([0, 64, 256, 1024]);
  });
});
