import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { execFile } from "node:child_process";
import { mkdtemp, readdir, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { promisify } from "node:util";
import { repoRoot } from "@unclip/devstack";
import { pngSize, startTestFarm } from "./farm-fixture.js";

const run = promisify(execFile);
let env: Awaited<ReturnType<typeof startTestFarm>>;
let out: string;
beforeAll(async () => {
  env = await startTestFarm();
  out = await mkdtemp(path.join(tmpdir(), "unclip-cli-"));
});
afterAll(async () => {
  await env?.stop();
  await rm(out, { recursive: true, force: true });
});

const unclip = (...args: string[]) =>
  run(process.execPath, ["--import", "tsx", path.join(repoRoot, "packages/cli/src/main.ts"), "-a", env.farm.grpcAddress, ...args], {
    cwd: repoRoot,
  });

describe("the unclip CLI against a running farm", () => {
  it("renders, writes every size it produced, and reports per-stage timings", async () => {
    const { stdout } = await unclip(
      "render",
      "a red circle on a blue background",
      "-s",
      "256",
      "-n",
      "2",
      "--decoder-steps",
      "5",
      "--prior-steps",
      "5",
      "-o",
      out,
    );
    const jobId = /job (\S+) finished/.exec(stdout)![1]!;
    expect(stdout).toMatch(/prior\s+[\d.]+ s per image/);
    expect(stdout).toMatch(/upscale-256\s+[\d.]+ s per image/);
    const files = (await readdir(path.join(out, jobId))).sort();
    expect(files).toEqual(["0-256.png", "0-64.png", "1-256.png", "1-64.png"]);
    expect(await pngSize(await readFile(path.join(out, jobId, "1-256.png")))).toEqual({ width: 256, height: 256 });

    const status = JSON.parse((await unclip("status", jobId)).stdout) as { state: string; images: unknown[] };
    expect(status.state).toBe("JOB_STATE_SUCCEEDED");
    expect(status.images).toHaveLength(2);
  });

  it("exits non-zero with the gateway's message on bad input", async () => {
    const failure = await unclip("render", "a cat", "-s", "512").catch((e: { code: number; stderr: string }) => e);
    expect((failure as { code: number }).code).toBe(1);
    expect((failure as { stderr: string }).stderr).toMatch(/size 512 is not offered.*\(INVALID_ARGUMENT\)/);
  });
});
