import { describe, expect, it } from "vitest";
import { readdir, writeFile } from "node:fs/promises";
import path from "node:path";
import sharp from "sharp";
import { cliTestFarm } from "./cli-fixture.js";

const cli = cliTestFarm("unclip-cli-manipulations-");
const { unclip } = cli;
const quick = ["-s", "64", "--decoder-steps", "3"];

async function scene(file: string, body: string): Promise<string> {
  const svg = `<svg xmlns="http://www.w3.org/2000/svg" width="64" height="64">${body}</svg>`;
  const target = path.join(cli.dir, file);
  await writeFile(target, await sharp(Buffer.from(svg)).png().toBuffer());
  return target;
}

describe("unclip interpolate and transform against a running farm", () => {
  it("interpolate writes one image per frame; --json streams the job's events", async () => {
    const a = await scene(
      "a.png",
      `<rect width="64" height="64" fill="#1030c0"/><rect x="8" y="8" width="20" height="20" fill="#d02020"/>`,
    );
    const b = await scene("b.png", `<rect width="64" height="64" fill="#f5f5f5"/><circle cx="40" cy="40" r="14" fill="#20a030"/>`);
    const r = await unclip(["interpolate", a, b, "--frames", "3", "--invert", ...quick, "-o", cli.dir]);
    expect(r.code, r.stderr).toBe(0);
    const jobId = /job (\S+) finished/.exec(r.stdout)![1]!;
    expect(r.stdout).toMatch(/interpolate-embed\s+[\d.]+ s per image/);
    expect((await readdir(path.join(cli.dir, jobId))).sort()).toEqual(["0-64.png", "1-64.png", "2-64.png"]);
    const status = await unclip(["status", jobId]);
    expect(status.stdout).toMatch(new RegExp(`^job ${jobId}: succeeded\\n  interpolate, 3 images at 64 px`));

    const json = await unclip(["interpolate", a, b, "--frames", "2", ...quick, "--json", "-o", cli.dir]);
    expect(json.code, json.stderr).toBe(0);
    const events = json.stdout
      .trim()
      .split("\n")
      .map((l) => JSON.parse(l) as Record<string, any>);
    expect(events[0]!.queued.job).toMatchObject({ kind: "JOB_KIND_INTERPOLATE", numImages: 2 });
    expect(events.at(-1)!.completed).toMatchObject({ state: "JOB_STATE_SUCCEEDED", images: [{ size: 64 }, { index: 1, size: 64 }] });
  });

  it("transform writes its images; captions that read the same exit 67 with the gateway's message", async () => {
    const a = await scene("t.png", `<rect width="64" height="64" fill="#f5f5f5"/><circle cx="32" cy="32" r="14" fill="#d02020"/>`);
    const r = await unclip(["transform", a, "a blue", "--from", "a red", "--strength", "0.6", "-n", "2", ...quick, "-o", cli.dir]);
    expect(r.code, r.stderr).toBe(0);
    const jobId = /job (\S+) finished/.exec(r.stdout)![1]!;
    expect(r.stdout).toMatch(/text-diff\s+[\d.]+ s per image/);
    expect((await readdir(path.join(cli.dir, jobId))).sort()).toEqual(["0-64.png", "1-64.png"]);

    const same = await unclip(["transform", a, "Red", "--from", "red", ...quick]);
    expect(same.code).toBe(67);
    expect(same.stderr).toMatch(/^unclip: to_caption "Red" and from_caption "red" read the same to the model.*\(INVALID_ARGUMENT\)\n$/);
  });
});
