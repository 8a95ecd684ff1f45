import { spawn, type ChildProcess } from "node:child_process";
import { createWriteStream, type WriteStream } from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { stopChild } from "./nats-server.js";

export const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../../..");

/** Children still running; killed when this process exits, so a crashed launcher or test leaves no orphans. */
const running = new Set<ChildProcess>();
process.once("exit", () => {
  for (const child of running) child.kill("SIGKILL");
});

/** "tsx" runs a service's TypeScript sources; "dist" its bundle from `npm run build`, as the production image does. */
export type ServiceRuntime = "tsx" | "dist";

export type ServiceName = "gateway" | "prior-worker" | "decoder-worker" | "upscale-worker";

/**
 * Variables that the launcher and the CLI read, not the services: never passed on to a service, so that a value set
 * for `npm run farm` does not reach the services' check of UNCLIP_* names (nor the CLI's API key every process).
 */
export const LAUNCHER_VARIABLES: readonly string[] = ["UNCLIP_FARM_WORKERS", "UNCLIP_GATEWAY", "UNCLIP_API_KEY"];

export interface ServiceProcess {
  readonly name: ServiceName;
  readonly child: ChildProcess;
  /** Fields of the service's "ready" log line (ports etc.). */
  readonly ready: Record<string, unknown>;
  /** Every log line so far, parsed. */
  readonly logs: Record<string, unknown>[];
  /** Sends signal (default SIGTERM), then SIGKILL after 30 s; resolves once the process has exited. */
  stop(signal?: NodeJS.Signals): Promise<void>;
  /** Resolves with the exit code, or null when a signal ended the process (then see child.signalCode). */
  readonly exited: Promise<number | null>;
}

/**
 * Starts one service as its own Node process (TypeScript run through tsx) and resolves once it logs that it is
 * ready. Its JSON log lines are kept, and appended to logFile when given. A process that does not become ready in
 * readyTimeoutMs (default 60 000) is killed.
 */
export async function startService(
  name: ServiceName,
  env: Record<string, string>,
  opts: { logFile?: string; readyTimeoutMs?: number; runtime?: ServiceRuntime } = {},
): Promise<ServiceProcess> {
  const childEnv: Record<string, string | undefined> = { ...process.env, ...env };
  for (const v of LAUNCHER_VARIABLES) delete childEnv[v];
  const args =
    opts.runtime === "dist"
      ? ["--enable-source-maps", path.join(repoRoot, "services", name, "dist", "main.mjs")]
      : ["--import", "tsx", path.join(repoRoot, "services", name, "src", "main.ts")];
  const child = spawn(process.execPath, args, {
    cwd: repoRoot,
    env: childEnv,
    stdio: ["ignore", "pipe", "pipe"],
  });
  running.add(child);
  child.once("exit", () => running.delete(child));
  const logs: Record<string, unknown>[] = [];
  const file: WriteStream | undefined = opts.logFile ? createWriteStream(opts.logFile, { flags: "a" }) : undefined;
  // After the exit, once its output is flushed: also when the process crashed rather than being stopped.
  child.once("close", () => file?.end());
  const exited = new Promise<number | null>((resolve) => child.once("exit", (code) => resolve(code)));
  let stderr = "";
  child.stderr!.on("data", (c: Buffer) => {
    stderr = (stderr + c.toString()).slice(-8000);
    file?.write(c);
  });
  const ready = await new Promise<Record<string, unknown>>((resolve, reject) => {
    let pending = "";
    const timer = setTimeout(() => {
      child.kill("SIGKILL");
      reject(new Error(`${name} did not become ready in ${opts.readyTimeoutMs ?? 60_000} ms\n${stderr}`));
    }, opts.readyTimeoutMs ?? 60_000);
    child.stdout!.on("data", (c: Buffer) => {
      file?.write(c);
      pending += c.toString();
      const lines = pending.split("\n");
      pending = lines.pop()!;
      for (const line of lines) {
        let entry: Record<string, unknown>;
        try {
          entry = JSON.parse(line) as Record<string, unknown>;
        } catch {
          continue;
        }
        logs.push(entry);
        if (entry.msg === `${name} ready`) {
          clearTimeout(timer);
          resolve(entry);
        }
      }
    });
    void exited.then((code) => {
      clearTimeout(timer);
      reject(new Error(`${name} exited with code ${code} before it was ready\n${stderr}`));
    });
  });
  return {
    name,
    child,
    ready,
    logs,
    exited,
    stop: (signal: NodeJS.Signals = "SIGTERM") => stopChild(child, signal, 30_000),
  };
}
