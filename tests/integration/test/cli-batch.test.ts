import { describe, expect, it } from "vitest";
import { readdir, readFile, writeFile } from "node:fs/promises";
import path from "node:path";
import { connectFarm, TASK_STREAM } from "@unclip/core";
import { cliTestFarm } from "./cli-fixture.js";
import { pngSize } from "./farm-fixture.js";

const cli = cliTestFarm("unclip-cli-batch-");
const { unclip } = cli;

async function lastTaskSeq(): Promise<number> {
  const conn = await connectFarm(cli.farm.nats.url, "cli-batch-test");
  try {
    return (await conn.jsm.streams.info(TASK_STREAM)).state.last_seq;
  } finally {
    await conn.nc.close();
  }
}

const PROMPTS = ["a red circle", "a green star", "a blue square", "a yellow heart", "a purple triangle", "an orange circle"];

describe("unclip batch against a running farm", () => {
  it("runs a prompts file to the end, downloads every image, and a rerun submits nothing new", async () => {
    const file = path.join(cli.dir, "prompts.txt");
    await writeFile(file, `# six shapes\n${PROMPTS.slice(0, 3).join("\n")}\n\n${PROMPTS.slice(3).join("\n")}\n`);
    const steps = ["--size", "64", "--prior-steps", "4", "--decoder-steps", "4", "--seed", "11"];

    const first = await unclip(["batch", file, ...steps]);
    expect(first, first.stderr).toMatchObject({ code: 0 });
    const batchId = /batch (b-[0-9a-f]{24}): 6 items submitted/.exec(first.stderr)![1]!;
    expect(first.stdout).toMatch(new RegExp(`batch ${batchId} completed after [\\d.]+ s: 6 items, 6 succeeded, 0 failed, 0 cancelled`));

    const out = path.join(cli.dir, "results");
    const results = await unclip(["batch-results", batchId, "--out", out]);
    expect(results, results.stderr).toMatchObject({ code: 0 });
    expect(results.stdout).toMatch(/6 items, 6 succeeded, 0 failed or cancelled/);
    expect(results.stdout).toMatch(/6 images downloaded/);
    const names = ["line-2", "line-3", "line-4", "line-6", "line-7", "line-8"];
    expect((await readdir(out)).sort()).toEqual([...names, "results.jsonl"].sort());
    for (const name of names) {
      expect(await readdir(path.join(out, name))).toEqual(["0.png"]);
      expect(await pngSize(await readFile(path.join(out, name, "0.png")))).toEqual({ width: 64, height: 64 });
    }
    const lines = (await readFile(path.join(out, "results.jsonl"), "utf8")).trim().split("\n");
    expect(lines).toHaveLength(6);
    const rows = lines.map((l) => JSON.parse(l) as { custom_id: string; job_id: string; state: string; images: { key: string }[] });
    expect(rows.map((r) => r.custom_id)).toEqual(names);
    for (const r of rows) expect(r).toMatchObject({ state: "JOB_STATE_SUCCEEDED", images: [{ key: expect.stringContaining(r.job_id) }] });

    // A second download finds everything on disk.
    expect((await unclip(["batch-results", batchId, "--out", out])).stdout).toMatch(/0 images downloaded, 6 already there/);

    const before = await lastTaskSeq();
    const again = await unclip(["batch", file, ...steps]);
    expect(again, again.stderr).toMatchObject({ code: 0 });
    expect(again.stderr).toMatch(new RegExp(`batch ${batchId} \\(6 items\\) was submitted at .*; nothing new submitted`));
    expect(again.stdout).toContain(`batch ${batchId} completed`);
    expect(await lastTaskSeq()).toBe(before);

    const status = JSON.parse((await unclip(["batch-status", batchId, "--json"])).stdout) as Record<string, unknown>;
    expect(status).toMatchObject({ batchId, state: "BATCH_STATE_COMPLETED", total: 6, succeeded: 6 });
    expect(status.resultsUrl).toMatch(/^http/);

    // The same id with other items: ALREADY_EXISTS (6), exit 64 + 6, with what to do about it.
    await writeFile(path.join(cli.dir, "other.txt"), "a white star\n");
    const conflict = await unclip(["batch", path.join(cli.dir, "other.txt"), "--batch-id", batchId, "--size", "64"]);
    expect(conflict.code).toBe(70);
    expect(conflict.stderr).toMatch(/already exists with other items; pass another --batch-id \(ALREADY_EXISTS\)/);
  });

  it("runs JSONL items, exits 1 when one fails, and files results under safe names", async () => {
    const sampling = { priorSteps: 4, decoderSteps: 4 };
    const file = path.join(cli.dir, "items.jsonl");
    await writeFile(
      file,
      [
        { custom_id: "shapes/red circle", generate: { prompt: "a red circle", size: 64, num_images: 2, seed: "3", sampling } },
        { custom_id: "too-big", generate: { prompt: "a blue star", size: 512, sampling } },
      ]
        .map((item) => JSON.stringify(item))
        .join("\n"),
    );
    const ran = await unclip(["batch", file, "--batch-id", "cli-jsonl-1", "--json"]);
    expect(ran.code, ran.stderr).toBe(1);
    expect(JSON.parse(ran.stdout)).toMatchObject({
      batchId: "cli-jsonl-1",
      state: "BATCH_STATE_COMPLETED",
      total: 2,
      succeeded: 1,
      failed: 1,
    });

    const out = path.join(cli.dir, "jsonl-results");
    const results = await unclip(["batch-results", "cli-jsonl-1", "-o", out]);
    expect(results.code, results.stderr).toBe(0);
    expect(results.stdout).toMatch(/too-big: failed: .*512/);
    const entries = (await readdir(out)).sort();
    expect(entries).toHaveLength(2);
    expect(entries).toContain("results.jsonl");
    const imageDir = entries.find((e) => e !== "results.jsonl")!;
    expect(imageDir).toMatch(/^shapes_red_circle-[0-9a-f]{10}$/);
    expect((await readdir(path.join(out, imageDir))).sort()).toEqual(["0.png", "1.png"]);
    expect((await readFile(path.join(out, "results.jsonl"), "utf8")).trim().split("\n")).toHaveLength(2);
  });

  it("refuses usage mistakes with exit 2 before calling the farm", async () => {
    const big = path.join(cli.dir, "big.txt");
    await writeFile(big, Array.from({ length: 1001 }, (_, i) => `prompt ${i}`).join("\n"));
    const tooMany = await unclip(["batch", big, "--size", "64"]);
    expect(tooMany.code).toBe(2);
    expect(tooMany.stderr).toMatch(/1001 items; at most 1000 go inline.*--manifest-key/);
    const jsonlFlags = await unclip(["batch", path.join(cli.dir, "items.jsonl"), "--size", "64"]);
    expect(jsonlFlags.code).toBe(2);
    expect(jsonlFlags.stderr).toMatch(/--size applies to prompts files only/);
    const badImages = await unclip(["batch", big, "-n", "0"]);
    expect(badImages).toMatchObject({ code: 2, stderr: 'unclip: --images: "0" is not a whole number from 1 to 8\n' });
    const missing = await unclip(["batch-status", "no-such-batch"]);
    expect(missing.code).toBe(69);
    expect(missing.stderr).toMatch(/^unclip: batch no-such-batch does not exist.*\(NOT_FOUND\)\n$/);
  });
});
