import { afterAll, beforeAll, describe, expect, it } from "vitest";
import sharp from "sharp";
import {
  create,
  CreateVariationsRequestSchema,
  EditImageRequestSchema,
  JobState,
  SamplingOptionsSchema,
  Stage,
  type Job,
} from "@unclip/protocol";
import { collect, fetchBytes, pngSize, startTestFarm, terminal } from "./farm-fixture.js";

let env: Awaited<ReturnType<typeof startTestFarm>>;
beforeAll(async () => {
  env = await startTestFarm();
});
afterAll(async () => {
  await env?.stop();
});

/** A 64 px scene: a red square on blue. */
async function scene(): Promise<Buffer> {
  const svg = `<svg xmlns="http://www.w3.org/2000/svg" width="64" height="64"><rect width="64" height="64" fill="#1030c0"/><rect x="8" y="8" width="20" height="20" fill="#d02020"/></svg>`;
  return sharp(Buffer.from(svg)).png().toBuffer();
}

/** Black (keep) everywhere but the right half, which is white (repaint). */
async function rightHalfMask(): Promise<Buffer> {
  const svg = `<svg xmlns="http://www.w3.org/2000/svg" width="64" height="64"><rect width="64" height="64" fill="#000"/><rect x="32" y="0" width="32" height="64" fill="#fff"/></svg>`;
  return sharp(Buffer.from(svg)).png().removeAlpha().toBuffer();
}

async function rgb(png: Uint8Array): Promise<Buffer> {
  return sharp(png).removeAlpha().raw().toBuffer();
}

const sampling = create(SamplingOptionsSchema, { priorSteps: 5, decoderSteps: 5 });

describe("variations and edits", () => {
  it("makes variations of an uploaded image through the image encoder", async () => {
    const events = await collect(
      env.client.createVariations(
        create(CreateVariationsRequestSchema, { image: await scene(), numImages: 2, size: 256, seed: 3n, sampling }),
      ),
    );
    const job = terminal(events).value as Job;
    expect(job.state).toBe(JobState.SUCCEEDED);
    expect(job.images).toHaveLength(2);
    expect(job.timings.filter((t) => t.index === 0).map((t) => t.stage)).toEqual([Stage.IMAGE_ENCODE, Stage.DECODER, Stage.UPSCALE_256]);
    expect(await pngSize(await fetchBytes(job.images[0]!.url))).toEqual({ width: 256, height: 256 });
  });

  it("repaints only the masked region of an edit", async () => {
    const source = await scene();
    const events = await collect(
      env.client.editImage(
        create(EditImageRequestSchema, {
          image: source,
          mask: await rightHalfMask(),
          prompt: "a green star",
          size: 64,
          seed: 9n,
          sampling,
        }),
      ),
    );
    const job = terminal(events).value as Job;
    expect(job.state).toBe(JobState.SUCCEEDED);
    const out = await rgb(await fetchBytes(job.images[0]!.url));
    const src = await rgb(source);
    let keptSame = 0;
    let repaintedDifferent = 0;
    for (let y = 0; y < 64; y++)
      for (let x = 0; x < 64; x++) {
        const i = (y * 64 + x) * 3;
        const same = out[i] === src[i] && out[i + 1] === src[i + 1] && out[i + 2] === src[i + 2];
        if (x < 32) keptSame += same ? 1 : 0;
        else repaintedDifferent += same ? 0 : 1;
      }
    expect(keptSame).toBe(32 * 64);
    expect(repaintedDifferent).toBeGreaterThan(32 * 64 * 0.9);
  });

  it("refuses an edit whose mask does not match the image's shape", async () => {
    const wide = await sharp({ create: { width: 128, height: 64, channels: 3, background: "#000" } })
      .png()
      .toBuffer();
    await expect(
      collect(env.client.editImage(create(EditImageRequestSchema, { image: await scene(), mask: wide, prompt: "a cat" }))),
    ).rejects.toMatchObject({
      code: 3,
      details: expect.stringMatching(/same aspect ratio/),
    });
  });
});
