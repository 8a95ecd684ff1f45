import { spawn } from "node:child_process";
import { once } from "node:events";
import { setTimeout as sleep } from "node:timers/promises";
import { afterEach, describe, expect, it } from "vitest";
import { stopChild } from "../src/nats-server.js";
import { restartDelayMs, SupervisedService, type SupervisedProcess } from "../src/supervised-service.js";

/** A real child process standing in for a service: ready once it has run `script` and written a line. */
async function startNode(script: string): Promise<SupervisedProcess> {
  const child = spawn(process.execPath, ["-e", `${script}; console.log("ready");`], { stdio: ["ignore", "pipe", "inherit"] });
  const exited = new Promise<number | null>((resolve) => child.once("exit", (code) => resolve(code)));
  await Promise.race([once(child.stdout!, "data"), exited.then((code) => Promise.reject(new Error(`exited with ${code} before ready`)))]);
  child.stdout!.resume();
  return { child, exited, stop: (signal) => stopChild(child, signal, 5_000) };
}

/** Runs until stopped; exits 0 on SIGTERM, as the farm's services do. */
const IDLE = "setInterval(() => {}, 1000); process.on('SIGTERM', () => process.exit(0))";
const FAST = { initialDelayMs: 20, maxDelayMs: 1_000, resetAfterMs: 60_000 };

const supervised: SupervisedService<SupervisedProcess>[] = [];
async function supervise(opts: { start: () => Promise<SupervisedProcess>; policy?: object }) {
  const s = await SupervisedService.start({ name: "test-worker-1", policy: FAST, ...opts });
  supervised.push(s);
  return s;
}
afterEach(async () => {
  await Promise.all(supervised.splice(0).map((s) => s.stop("SIGKILL")));
});

describe("restartDelayMs", () => {
  it("starts at 0.5 s and doubles up to 30 s", () => {
    expect([0, 1, 2, 3, 4, 5, 6, 7, 10].map((n) => restartDelayMs(n))).toEqual([500, 1000, 2000, 4000, 8000, 16000, 30000, 30000, 30000]);
  });
});

describe("SupervisedService", () => {
  it("restarts a process killed with SIGKILL, counts the restart and records the exit", async () => {
    const s = await supervise({ start: () => startNode(IDLE) });
    const first = s.current;
    const exits: unknown[] = [];
    s.on("exit", (e) => exits.push(e));
    const next = s.restarted();
    expect(s.kill("SIGKILL")).toBe(true);
    const proc = await next;
    expect(proc).toBe(s.current);
    expect(proc.child.pid).not.toBe(first.child.pid);
    expect(proc.child.exitCode).toBeNull();
    expect(s.restarts).toBe(1);
    expect(s.exits).toEqual([expect.objectContaining({ pid: first.child.pid, code: null, signal: "SIGKILL", restartInMs: 20 })]);
    expect(exits).toEqual(s.exits);
  });

  it("restarts a process that exits 0 after a SIGTERM that did not come from stop()", async () => {
    const s = await supervise({ start: () => startNode(IDLE) });
    const next = s.restarted();
    s.kill("SIGTERM");
    await next;
    expect(s.exits).toEqual([expect.objectContaining({ code: 0, signal: null })]);
  });

  it("does not restart what stop() stopped, and stop() is idempotent", async () => {
    let starts = 0;
    const s = await supervise({ start: () => (starts++, startNode(IDLE)) });
    const next = expect(s.restarted()).rejects.toThrow(/test-worker-1 is no longer restarted/);
    const first = s.current;
    await Promise.all([s.stop(), s.stop()]);
    expect(await first.exited).toBe(0);
    await next;
    await sleep(200);
    expect(starts).toBe(1);
    expect(s.restarts).toBe(0);
    expect(s.exits).toEqual([]);
    expect(s.stopped).toBe(true);
    await expect(s.restarted()).rejects.toThrow(/is no longer restarted/);
  });

  it("after stopRestarting(), leaves a process that exits down", async () => {
    const s = await supervise({ start: () => startNode(IDLE) });
    const first = s.current;
    s.stopRestarting();
    expect(s.stopped).toBe(false);
    s.kill("SIGINT"); // as a Ctrl-C that reaches every process of the terminal's group
    expect(await first.exited).toBeNull();
    await sleep(200);
    expect(s.restarts).toBe(0);
    expect(s.exits).toEqual([]);
    await s.stop();
  });

  it("backs off exponentially while a process keeps crashing", async () => {
    const s = await supervise({ start: () => startNode("setImmediate(() => process.exit(3))") });
    while (s.exits.length < 5) await sleep(20);
    await s.stop();
    expect(s.exits.slice(0, 5).map((e) => e.restartInMs)).toEqual([20, 40, 80, 160, 320]);
    expect(s.exits.every((e) => e.code === 3)).toBe(true);
  });

  it("goes back to the first delay after a process stayed up resetAfterMs", async () => {
    const s = await supervise({
      start: () => startNode("setTimeout(() => process.exit(1), 400)"),
      policy: { ...FAST, resetAfterMs: 100 },
    });
    while (s.exits.length < 3) await sleep(20);
    await s.stop();
    expect(s.exits.slice(0, 3).map((e) => e.restartInMs)).toEqual([20, 20, 20]);
  });

  it("retries a restart that fails to start, with backoff, until one is ready", async () => {
    let starts = 0;
    const s = await supervise({
      start: async () => {
        starts++;
        if (starts === 2 || starts === 3) throw new Error(`start ${starts} failed`);
        return startNode(IDLE);
      },
    });
    const next = s.restarted();
    s.kill();
    await next;
    expect(starts).toBe(4);
    expect(s.restarts).toBe(1);
    expect(s.exits.map((e) => [e.restartInMs, e.error?.message])).toEqual([
      [20, undefined],
      [40, "start 2 failed"],
      [80, "start 3 failed"],
    ]);
  });

  it("cancels a pending restart, and stops a restart under way, when stop() comes", async () => {
    const slow = await supervise({ start: () => startNode(IDLE), policy: { ...FAST, initialDelayMs: 10_000 } });
    slow.kill();
    while (slow.exits.length === 0) await sleep(10);
    await slow.stop();
    expect(slow.restarts).toBe(0);

    let starting: Promise<SupervisedProcess> | undefined;
    const s = await supervise({
      start: () => {
        if (!starting) return startNode(IDLE);
        return starting;
      },
    });
    starting = sleep(300).then(() => startNode(IDLE));
    s.kill();
    await sleep(100); // the restart is now waiting for the start
    await s.stop();
    const late = await starting;
    expect(late.child.exitCode !== null || late.child.signalCode !== null).toBe(true);
    expect(s.restarts).toBe(0);
  });

  it("rejects, supervising nothing, when the first start fails", async () => {
    await expect(
      SupervisedService.start({
        name: "x",
        start: () => Promise.reject(new Error("no model")),
      }),
    ).rejects.toThrow("no model");
  });
});
