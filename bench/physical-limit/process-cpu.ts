import { execFileSync } from "node:child_process";
import { readFileSync } from "node:fs";

/** One process as /proc/<pid>/stat shows it. */
export interface ProcStat {
  readonly ppid: number;
  readonly comm: string;
  /** CPU time used so far (utime + stime), in clock ticks (TICKS_PER_SECOND). */
  readonly ticks: number;
}

/** Ticks per second of /proc's CPU times (getconf CLK_TCK). */
export const TICKS_PER_SECOND = clockTicks();

/** Reads /proc/<pid>/stat; undefined when the process is gone. */
export function procStat(pid: number | string): ProcStat | undefined {
  let stat: string;
  try {
    stat = readFileSync(`/proc/${pid}/stat`, "utf8");
  } catch {
    return undefined; // exited meanwhile
  }
  // pid (comm) state ppid … utime stime: comm may hold spaces and parentheses, so split after the last ")".
  const close = stat.lastIndexOf(")");
  const fields = stat.slice(close + 2).split(" ");
  return { ppid: Number(fields[1]), comm: stat.slice(stat.indexOf("(") + 1, close), ticks: Number(fields[11]) + Number(fields[12]) };
}

/** CPU seconds (user + system) each named process has used so far; a process that is gone reads NaN. */
export function cpuSeconds(pids: Readonly<Record<string, number>>): Record<string, number> {
  const out: Record<string, number> = {};
  for (const [name, pid] of Object.entries(pids)) {
    if (pid === process.pid) {
      const { user, system } = process.cpuUsage();
      out[name] = (user + system) / 1e6;
    } else {
      out[name] = (procStat(pid)?.ticks ?? Number.NaN) / TICKS_PER_SECOND;
    }
  }
  return out;
}

/** What each process used between two readings. */
export function cpuUsedBetween(before: Readonly<Record<string, number>>, after: Readonly<Record<string, number>>): Record<string, number> {
  return Object.fromEntries(Object.keys(after).map((k) => [k, (after[k] ?? Number.NaN) - (before[k] ?? Number.NaN)]));
}

function clockTicks(): number {
  try {
    const v = Number(execFileSync("getconf", ["CLK_TCK"], { encoding: "utf8" }).trim());
    return v > 0 ? v : 100;
  } catch {
    return 100;
  }
}
