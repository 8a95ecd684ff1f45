import { spawn } from "node:child_process";
import { fileURLToPath } from "node:url";

const MAIN = fileURLToPath(new URL("./main.ts", import.meta.url));

export type CliOutcome = { code: number | null; stdout: string; stderr: string };

export interface CliRun {
  cwd?: string;
  /** Sees each stdout line as it comes, and may signal the process. */
  onLine?: (line: string, kill: (signal: NodeJS.Signals) => void) => void;
}

/** Runs the CLI from its source (node --import tsx) as a child process, as the tests that drive it end to end do. */
export function runCli(args: string[], { cwd, onLine }: CliRun = {}): Promise<CliOutcome> {
  const child = spawn(process.execPath, ["--import", "tsx", MAIN, ...args], { cwd, stdio: ["ignore", "pipe", "pipe"] });
  let stdout = "";
  let stderr = "";
  let partial = "";
  child.stdout.on("data", (d: Buffer) => {
    stdout += d;
    partial += d;
    const lines = partial.split("\n");
    partial = lines.pop()!;
    for (const line of lines) onLine?.(line, (signal) => child.kill(signal));
  });
  child.stderr.on("data", (d: Buffer) => (stderr += d));
  return new Promise((resolve) => child.on("close", (code) => resolve({ code, stdout, stderr })));
}
