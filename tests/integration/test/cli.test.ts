import { describe, expect, it } from "vitest";
import { readdir, readFile } from "node:fs/promises";
import path from "node:path";
import { OTHER_TOOLS_VARIABLES } from "@unclip/core";
import { repoRoot } from "@unclip/devstack";
import { cliTestFarm } from "./cli-fixture.js";
import { pngSize } from "./farm-fixture.js";

const cli = cliTestFarm("unclip-cli-");
const { unclip } = cli;
const CLI_SOURCE = path.join(repoRoot, "packages/cli/src");

type EventLine = { jobId: string; atMs: string } & Record<string, any>;
const jsonLines = (stdout: string) =>
  stdout
    .trim()
    .split("\n")
    .map((l) => JSON.parse(l) as EventLine);
const eventCase = (e: EventLine) => Object.keys(e).find((k) => k !== "jobId" && k !== "atMs");
const quick = ["--prior-steps", "5", "--decoder-steps", "5"];

describe("the unclip CLI against a running farm", () => {
  it("renders, writes every size it produced, and reports per-stage timings", async () => {
    const r = await unclip(["render", "a red circle on a blue background", "-s", "256", "-n", "2", ...quick, "-o", cli.dir]);
    expect(r.code, r.stderr).toBe(0);
    const jobId = /job (\S+) finished/.exec(r.stdout)![1]!;
    // The job id comes on stderr as soon as the job is queued; stdout has the result.
    expect(r.stderr).toMatch(new RegExp(`^job ${jobId} queued, ETA `, "m"));
    expect(r.stdout).toMatch(/prior\s+[\d.]+ s per image/);
    expect(r.stdout).toMatch(/upscale-256\s+[\d.]+ s per image/);
    const files = (await readdir(path.join(cli.dir, jobId))).sort();
    expect(files).toEqual(["0-256.png", "0-64.png", "1-256.png", "1-64.png"]);
    expect(await pngSize(await readFile(path.join(cli.dir, jobId, "1-256.png")))).toEqual({ width: 256, height: 256 });

    const status = await unclip(["status", jobId, "--json"]);
    expect(status.code).toBe(0);
    const job = JSON.parse(status.stdout) as { jobId: string; state: string; images: unknown[] };
    expect(job).toMatchObject({ jobId, state: "JOB_STATE_SUCCEEDED" });
    expect(job.images).toHaveLength(2);
    const human = await unclip(["status", jobId]);
    expect(human.stdout).toMatch(new RegExp(`^job ${jobId}: succeeded\\n  generate, 2 images at 256 px, seed \\d+, prompt "a red circle`));
  });

  it("--json: one JobEvent per line, queued first and the terminal event last; --include-bytes writes the inline PNGs", async () => {
    const r = await unclip(["render", "a green star", "-s", "256", ...quick, "--seed", "5", "--json", "--include-bytes", "-o", cli.dir]);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr).toBe("");
    const events = jsonLines(r.stdout);
    const jobId = events[0]!.jobId;
    expect(eventCase(events[0]!)).toBe("queued");
    expect(events[0]!.queued.job).toMatchObject({ jobId, state: "JOB_STATE_QUEUED", seed: "5", size: 256 });
    expect(events.every((e) => e.jobId === jobId && /^\d+$/.test(e.atMs))).toBe(true);
    expect(events.map(eventCase)).toContain("stageFinished");
    const last = events.at(-1)!;
    expect(eventCase(last)).toBe("completed");
    expect(last.completed).toMatchObject({ jobId, state: "JOB_STATE_SUCCEEDED", images: [{ size: 256 }] });
    // include_bytes puts the PNGs in the preview (64 px) and image (256 px) events; those bytes are the files.
    for (const [kind, size] of [
      ["preview", 64],
      ["image", 256],
    ] as const) {
      const ref = events.find((e) => eventCase(e) === kind)![kind] as { size: number; png: string };
      expect(ref.size).toBe(size);
      const png = Buffer.from(ref.png, "base64");
      expect(await pngSize(png)).toEqual({ width: size, height: size });
      expect(await readFile(path.join(cli.dir, jobId, `0-${size}.png`))).toEqual(png);
    }
  });

  it("exits 64 + the gRPC status code: 67 for INVALID_ARGUMENT, 69 for NOT_FOUND", async () => {
    const invalid = await unclip(["render", "   ", "-s", "64"]);
    expect(invalid.code).toBe(67);
    expect(invalid.stderr).toBe("unclip: prompt is empty (or only invisible characters): describe the image you want (INVALID_ARGUMENT)\n");
    for (const command of ["status", "watch", "cancel"]) {
      const missing = await unclip([command, "no-such-job-1", "--json"]);
      expect(missing, command).toMatchObject({ code: 69, stdout: "" });
      expect(missing.stderr).toMatch(/^unclip: job no-such-job-1 does not exist.*\(NOT_FOUND\)\n$/);
    }
  });

  it("exits 2 with a readable message for bad flags, before calling the farm", async () => {
    const seed = await unclip(["render", "a cat", "--seed", "abc"]);
    expect(seed).toMatchObject({
      code: 2,
      stdout: "",
      stderr: 'unclip: --seed: "abc" is not a whole number from 0 to 18446744073709551615\n',
    });
    expect(await unclip(["render", "a cat", "-n", "many"])).toMatchObject({
      code: 2,
      stderr: 'unclip: --images: "many" is not a whole number from 1 to 8\n',
    });
    expect(await unclip(["render", "a cat", "-s", "512"])).toMatchObject({
      code: 2,
      stderr: 'unclip: --size: "512" is not one of 64, 256, 1024\n',
    });
    const version = await unclip(["--version"]);
    expect(version).toMatchObject({ code: 0, stdout: "0.1.0\n" });
  });

  it("Ctrl-C leaves the job running (exit 130) and `unclip watch` follows it to its end", async () => {
    let jobId = "";
    // Enough steps that the job still runs when watch starts (a few seconds), so watch sees its progress too.
    const steps = ["--prior-steps", "1000", "--decoder-steps", "1000"];
    const interrupted = await unclip(["render", "a blue square", "-s", "256", ...steps, "--json", "-o", cli.dir], (line, kill) => {
      if (jobId) return;
      jobId = (JSON.parse(line) as EventLine).jobId;
      kill("SIGINT");
    });
    expect(interrupted.code).toBe(130);
    expect(interrupted.stderr).toContain(`stopped following job ${jobId}; it keeps running on the farm`);
    expect(interrupted.stderr).toContain(`watch ${jobId}`);

    const watched = await unclip(["watch", jobId, "--json", "-o", cli.dir]);
    expect(watched.code, watched.stderr).toBe(0);
    const events = jsonLines(watched.stdout);
    expect(events.every((e) => e.jobId === jobId)).toBe(true);
    expect(events.length).toBeGreaterThan(1);
    expect(events.at(-1)).toMatchObject({ completed: { jobId, state: "JOB_STATE_SUCCEEDED" } });
    expect(await pngSize(await readFile(path.join(cli.dir, jobId, "0-256.png")))).toEqual({ width: 256, height: 256 });

    // Watching a job that has ended gives its terminal event at once; human mode prints the result.
    const again = await unclip(["watch", jobId, "-o", cli.dir]);
    expect(again.code, again.stderr).toBe(0);
    expect(again.stdout).toMatch(new RegExp(`^job ${jobId} finished in`));
  });

  it("Ctrl-C with --cancel-on-interrupt cancels the job; status then exits 1", async () => {
    let jobId = "";
    // Enough steps that the job is still running when the interrupt comes.
    const slow = ["--prior-steps", "1000", "--decoder-steps", "1000", "-n", "8"];
    const r = await unclip(
      ["render", "a slow yellow heart", "-s", "1024", ...slow, "--json", "--cancel-on-interrupt", "-o", cli.dir],
      (line, kill) => {
        if (jobId) return;
        jobId = (JSON.parse(line) as EventLine).jobId;
        kill("SIGINT");
      },
    );
    expect(r.code).toBe(130);
    expect(r.stderr).toContain(`cancelled job ${jobId} (cancelled)`);
    const status = await unclip(["status", jobId, "--json"]);
    expect(status.code).toBe(1);
    expect(JSON.parse(status.stdout)).toMatchObject({ jobId, state: "JOB_STATE_CANCELLED" });
    // Cancelling it again: the job already ended, FAILED_PRECONDITION (9).
    const again = await unclip(["cancel", jobId]);
    expect(again.code).toBe(64 + 9);
    expect(again.stderr).toMatch(/already ended \(cancelled\) \(FAILED_PRECONDITION\)/);
  });

  it("reads only environment variables that the services' strict configuration leaves to other tools", async () => {
    const names = new Set<string>();
    for (const file of await readdir(CLI_SOURCE)) {
      for (const m of (await readFile(path.join(CLI_SOURCE, file), "utf8")).matchAll(/\bUNCLIP_[A-Z0-9_]+/g)) names.add(m[0]);
    }
    expect([...names]).toContain("UNCLIP_GATEWAY");
    for (const name of names) expect(OTHER_TOOLS_VARIABLES.has(name), name).toBe(true);
  });
});
