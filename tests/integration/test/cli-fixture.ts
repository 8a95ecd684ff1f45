import { afterAll, beforeAll } from "vitest";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { runCli, type CliRun } from "@unclip/cli";
import { repoRoot } from "@unclip/devstack";
import { startTestFarm } from "./farm-fixture.js";

/**
 * For a CLI test file: a test farm and a scratch directory, there from before its tests to after them, and the CLI
 * run from the repository root against that farm.
 */
export function cliTestFarm(scratchPrefix: string) {
  let env: Awaited<ReturnType<typeof startTestFarm>>;
  let dir: string;
  beforeAll(async () => {
    env = await startTestFarm();
    dir = await mkdtemp(path.join(tmpdir(), scratchPrefix));
  });
  afterAll(async () => {
    await env?.stop();
    await rm(dir, { recursive: true, force: true });
  });
  return {
    get farm() {
      return env.farm;
    },
    get dir() {
      return dir;
    },
    unclip: (args: string[], onLine?: CliRun["onLine"]) => runCli(["-a", env.farm.grpcAddress, ...args], { cwd: repoRoot, onLine }),
  };
}
