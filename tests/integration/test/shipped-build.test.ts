import { execFile } from "node:child_process";
import { promisify } from "node:util";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { UnclipClient } from "@unclip/cli";
import { repoRoot, startFarmStack, type FarmStack } from "@unclip/devstack";
import { create, GenerateRequestSchema, JobState, type Job } from "@unclip/protocol";
import sharp from "sharp";
import { collect, fetchBytes, terminal } from "./farm-fixture.js";

/**
 * What ships: the services bundled by `npm run build` (as the production image runs them, without tsx), the trained
 * shapes-v1 bundle and its own upsamplers (models/shapes-upsamplers, which the upscale worker picks for shapes-v1 images
 * by default), end to end at 256 px.
 */
let farm: FarmStack;
let client: UnclipClient;
beforeAll(async () => {
  await promisify(execFile)(process.execPath, ["--import", "tsx", "tools/build-services.ts"], { cwd: repoRoot });
  farm = await startFarmStack({ runtime: "dist" });
  client = new UnclipClient(farm.grpcAddress);
});
afterAll(async () => {
  client?.close();
  await farm?.stop();
});

describe("the shipped build with the shipped models", () => {
  it("renders a red circle on a blue background at 256 px", async () => {
    const events = await collect(
      client.generate(create(GenerateRequestSchema, { prompt: "a red circle on a blue background", size: 256, seed: 42n })),
    );
    expect(terminal(events).case).toBe("completed");
    const job = terminal(events).value as Job;
    expect(job.state).toBe(JobState.SUCCEEDED);
    expect(job.bundles.join(" ")).toMatch(/decoder=shapes-v1@/);
    expect(job.bundles.join(" ")).toMatch(/upscale-256=shapes-upsamplers@/);
    const { data, info } = await sharp(await fetchBytes(job.images[0]!.url))
      .removeAlpha()
      .raw()
      .toBuffer({ resolveWithObject: true });
    expect([info.width, info.height]).toEqual([256, 256]);
    let blue = 0;
    let red = 0;
    for (let i = 0; i < data.length; i += 3) {
      const [r, g, b] = [data[i]!, data[i + 1]!, data[i + 2]!];
      if (b > 120 && b > r + 60 && b > g + 30) blue++;
      if (r > 120 && r > b + 60 && r > g + 60) red++;
    }
    const pixels = info.width * info.height;
    // A blue background with a red object: most pixels blue, a visible share red.
    expect(blue / pixels).toBeGreaterThan(0.5);
    expect(red / pixels).toBeGreaterThan(0.02);
  });
});
