import { readdirSync, readFileSync } from "node:fs";
import { availableParallelism } from "node:os";
import { setTimeout as sleep } from "node:timers/promises";
import { procStat, TICKS_PER_SECOND, type ProcStat } from "./process-cpu.js";

/** A process that used CPU while the benchmark ran, outside the benchmark's own process tree. */
export interface Offender {
  readonly pid: number;
  readonly comm: string;
  /** CPU in cores (1 = one core busy) over the window it was seen in. */
  readonly cores: number;
}

/** One window of the machine's activity. */
export interface LoadWindow {
  /** Seconds since the monitor started, at the window's end. */
  readonly t: number;
  /** CPU of every process outside this benchmark's tree (this process, the farm it started), in cores. */
  readonly otherCores: number;
  /** Share of all cores busy (every process counted), from /proc/stat. */
  readonly machineBusy: number;
  readonly load1: number;
  readonly top: readonly Offender[];
}

/** The machine during one phase of the run. */
export interface PhaseLoad {
  readonly phase: string;
  readonly seconds: number;
  readonly otherCoresMean: number;
  readonly otherCoresMax: number;
  readonly machineBusyMean: number;
  /** Other processes' CPU mean above busyCores, or one window above twice that. */
  readonly busy: boolean;
  readonly top: readonly Offender[];
}

export interface GuardVerdict {
  readonly busy: boolean;
  readonly reasons: readonly string[];
  readonly load: readonly [number, number, number];
  readonly window: LoadWindow;
  readonly cores: number;
}

interface Reading {
  atMs: number;
  procs: Map<number, ProcStat>;
  cpu: { busy: number; total: number };
}

/**
 * Reads the 1-minute load average and samples every other process's CPU for `windowMs`. Busy when the load average
 * is at or above `busyLoad`, or other processes use more than `busyCores` cores.
 */
export async function checkMachine(busyCores: number, busyLoad: number, windowMs = 3000): Promise<GuardVerdict> {
  const load = loadAverage();
  const first = read();
  await sleep(windowMs);
  const window = between(first, read(), 0);
  const reasons: string[] = [];
  if (load[0] >= busyLoad) reasons.push(`1-minute load average ${load[0].toFixed(2)} ≥ ${busyLoad}`);
  if (window.otherCores > busyCores) {
    const who = window.top.map((o) => `${o.comm} (pid ${o.pid}, ${o.cores.toFixed(2)})`).join(", ");
    reasons.push(`other processes use ${window.otherCores.toFixed(2)} cores > ${busyCores}${who ? `: ${who}` : ""}`);
  }
  return { busy: reasons.length > 0, reasons, load, window, cores: availableParallelism() };
}

/** Samples the machine every periodMs while the benchmark runs, and sums each phase up. */
export class MachineMonitor {
  readonly windows: LoadWindow[] = [];
  private readonly phases: { phase: string; fromIndex: number; startMs: number }[] = [];
  private readonly startMs = Date.now();
  private last = read();
  private readonly timer: NodeJS.Timeout;

  constructor(
    private readonly busyCores: number,
    periodMs = 2000,
  ) {
    this.timer = setInterval(() => this.sample(), periodMs);
    this.timer.unref();
  }

  /** Marks the start of a phase (which ends the previous one). */
  phase(name: string): void {
    this.sample();
    this.phases.push({ phase: name, fromIndex: this.windows.length, startMs: Date.now() });
  }

  stop(): PhaseLoad[] {
    this.sample();
    clearInterval(this.timer);
    return this.phases.map((p, i) => {
      const next = this.phases[i + 1];
      const windows = this.windows.slice(p.fromIndex, next?.fromIndex ?? this.windows.length);
      const cores = windows.map((w) => w.otherCores);
      const mean = cores.length ? cores.reduce((a, b) => a + b, 0) / cores.length : 0;
      const max = cores.length ? Math.max(...cores) : 0;
      const top = new Map<string, Offender>();
      for (const o of windows.flatMap((w) => w.top)) if ((top.get(o.comm)?.cores ?? 0) < o.cores) top.set(o.comm, o);
      return {
        phase: p.phase,
        seconds: ((next?.startMs ?? Date.now()) - p.startMs) / 1000,
        otherCoresMean: mean,
        otherCoresMax: max,
        machineBusyMean: windows.length ? windows.reduce((a, w) => a + w.machineBusy, 0) / windows.length : 0,
        busy: mean > this.busyCores || max > 2 * this.busyCores,
        top: [...top.values()].sort((a, b) => b.cores - a.cores).slice(0, 3),
      };
    });
  }

  private sample(): void {
    const now = read();
    if (now.atMs - this.last.atMs < 200) return;
    this.windows.push(between(this.last, now, (now.atMs - this.startMs) / 1000));
    this.last = now;
  }
}

export function loadAverage(): [number, number, number] {
  const [a, b, c] = readFileSync("/proc/loadavg", "utf8").split(" ").map(Number);
  return [a ?? 0, b ?? 0, c ?? 0];
}

function between(a: Reading, b: Reading, t: number): LoadWindow {
  const seconds = Math.max(1e-3, (b.atMs - a.atMs) / 1000);
  const ours = descendants(b.procs, process.pid);
  const offenders: Offender[] = [];
  let otherTicks = 0;
  for (const [pid, p] of b.procs) {
    if (ours.has(pid)) continue;
    // A process that started inside the window counts with all its CPU so far.
    const ticks = p.ticks - (a.procs.get(pid)?.ticks ?? 0);
    if (ticks <= 0) continue;
    otherTicks += ticks;
    offenders.push({ pid, comm: p.comm, cores: ticks / TICKS_PER_SECOND / seconds });
  }
  const total = b.cpu.total - a.cpu.total;
  return {
    t,
    otherCores: otherTicks / TICKS_PER_SECOND / seconds,
    machineBusy: total > 0 ? (b.cpu.busy - a.cpu.busy) / total : 0,
    load1: loadAverage()[0],
    top: offenders
      .filter((o) => o.cores >= 0.05)
      .sort((x, y) => y.cores - x.cores)
      .slice(0, 3),
  };
}

function descendants(procs: Map<number, ProcStat>, root: number): Set<number> {
  const children = new Map<number, number[]>();
  for (const [pid, p] of procs) children.set(p.ppid, [...(children.get(p.ppid) ?? []), pid]);
  const out = new Set<number>([root]);
  const stack = [root];
  while (stack.length > 0) {
    for (const c of children.get(stack.pop()!) ?? []) {
      if (out.has(c)) continue;
      out.add(c);
      stack.push(c);
    }
  }
  return out;
}

function read(): Reading {
  const procs = new Map<number, ProcStat>();
  for (const name of readdirSync("/proc")) {
    if (!/^\d+$/.test(name)) continue;
    const stat = procStat(name);
    if (stat) procs.set(Number(name), stat);
  }
  // user nice system idle iowait irq softirq steal (guest time is already inside user and nice).
  const cpu = readFileSync("/proc/stat", "utf8").split("\n")[0]!.split(/\s+/).slice(1, 9).map(Number);
  const total = cpu.reduce((a, b) => a + (Number.isFinite(b) ? b : 0), 0);
  const idle = (cpu[3] ?? 0) + (cpu[4] ?? 0);
  return { atMs: Date.now(), procs, cpu: { busy: total - idle, total } };
}
