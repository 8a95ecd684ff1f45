import { readFileSync } from "node:fs";
import { clockTicks } from "./machine-guard.js";

const TICKS = clockTicks();

/** CPU seconds (user + system) each named process has used so far; a process that is gone reads NaN. */
export function cpuSeconds(pids: Readonly<Record<string, number>>): Record<string, number> {
  const out: Record<string, number> = {};
  for (const [name, pid] of Object.entries(pids)) {
    if (pid === process.pid) {
      const { user, system } = process.cpuUsage();
      out[name] = (user + system) / 1e6;
      continue;
    }
    try {
      const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
      // Fields after "(comm) ": state ppid … utime (12th) stime (13th); comm may hold spaces and parentheses.
      const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
      out[name] = (Number(fields[11]) + Number(fields[12])) / TICKS;
    } catch {
      out[name] = Number.NaN;
    }
  }
  return out;
}

/** What each process used between two readings. */
export function cpuUsedBetween(before: Readonly<Record<string, number>>, after: Readonly<Record<string, number>>): Record<string, number> {
  return Object.fromEntries(Object.keys(after).map((k) => [k, (after[k] ?? Number.NaN) - (before[k] ?? Number.NaN)]));
}
