import { writeSync } from "node:fs";
import { pino } from "pino";
import { ConfigError, type Env } from "./config.js";
import type { Logger } from "./logger.js";

/**
 * Fault points: named places in the code where a process may kill itself on purpose, with SIGKILL, so that the
 * chaos suite can crash a worker or the gateway exactly between two steps that must stay consistent (an image
 * stored but its next task not published, a task published but not acked, …) and check that the farm still ends
 * every job once. Off by default: a process arms them only when UNCLIP_FAULT_POINTS is set.
 *
 * `UNCLIP_FAULT_POINTS="after-store=0.05,before-ack=0.1"` names points and the probability (0 to 1) that one
 * passage through the point kills the process.
 */
export type FaultPoints = ReadonlyMap<string, number>;

/** The fault points of the stage workers' hand-off, in the order a task passes them. */
export const HAND_OFF_FAULT_POINTS = ["before-store", "after-store", "after-publish", "before-ack"] as const;

const VARIABLE = "UNCLIP_FAULT_POINTS";
const NAME = /^[a-z][a-z0-9-]*$/;

/** Compiles UNCLIP_FAULT_POINTS; a bad entry stops startup with a message that names the variable. */
export function loadFaultPoints(env: Env): FaultPoints {
  const raw = env[VARIABLE]?.trim();
  const points = new Map<string, number>();
  if (!raw) return points;
  for (const entry of raw.split(",")) {
    const [name = "", probability = "", ...rest] = entry.trim().split("=");
    const p = Number(probability);
    if (!NAME.test(name) || probability === "" || rest.length > 0 || !(p >= 0 && p <= 1)) {
      throw new ConfigError(`${VARIABLE}: ${JSON.stringify(entry)} must be name=probability, with a probability from 0 to 1`);
    }
    if (points.has(name)) throw new ConfigError(`${VARIABLE}: fault point ${name} is named twice`);
    points.set(name, p);
  }
  return points;
}

interface Armed {
  points: FaultPoints;
  log: Logger;
  random: () => number;
  kill: (name: string) => void;
}

let armed: Armed | undefined;

/**
 * Writes the line that says why the process dies straight to stdout, synchronously: pino's stream keeps what a full
 * pipe refused (EAGAIN) for a later, asynchronous retry, which SIGKILL would lose on a loaded machine whose reader
 * lags. Lines pino still buffers are flushed first where it can; the kill goes ahead after at most a second.
 */
function writeLastLine(log: Logger, name: string): void {
  const stream = (log as unknown as Record<symbol, { flushSync?: () => void } | undefined>)[pino.symbols.streamSym];
  try {
    stream?.flushSync?.();
  } catch {
    // A stream busy with a retry: its lines are lost with the process, this one is not.
  }
  const line = { level: 40, time: Date.now(), ...log.bindings(), faultPoint: name, msg: `fault point ${name}: SIGKILL` };
  const bytes = Buffer.from(`${JSON.stringify(line)}\n`);
  const pause = new Int32Array(new SharedArrayBuffer(4));
  for (let written = 0, attempt = 0; written < bytes.length && attempt < 100; ) {
    try {
      written += writeSync(1, bytes, written);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== "EAGAIN") return;
      attempt++;
      Atomics.wait(pause, 0, 0, 10);
    }
  }
}

/**
 * Arms the process's fault points (once, from its compiled config). `random` and `kill` are replaceable so that
 * a test can observe a firing without losing its own process.
 */
export function armFaultPoints(
  points: FaultPoints,
  log: Logger,
  options: { random?: () => number; kill?: (name: string) => void } = {},
): void {
  if (points.size === 0) {
    armed = undefined;
    return;
  }
  armed = {
    points,
    log,
    random: options.random ?? Math.random,
    kill: options.kill ?? (() => process.kill(process.pid, "SIGKILL")),
  };
  log.warn({ faultPoints: Object.fromEntries(points) }, "fault points armed: this process will kill itself on purpose");
}

/** A place where the process may be killed on purpose; does nothing unless UNCLIP_FAULT_POINTS names it. */
export function faultPoint(name: string): void {
  if (!armed) return;
  const probability = armed.points.get(name);
  if (probability === undefined || armed.random() >= probability) return;
  writeLastLine(armed.log, name);
  armed.kill(name);
}
