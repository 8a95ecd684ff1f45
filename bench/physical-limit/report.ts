import type { BenchConfig } from "./bench-config.js";
import type { BreakdownRow, Segment } from "./breakdown.js";
import type { Figure, HopRow, SaturationRound } from "./figures.js";
import type { GuardVerdict, LoadWindow, PhaseLoad } from "./machine-guard.js";
import { fmt, fmtP, type Percentiles } from "./stats.js";
import type { TransportFloor } from "./transport-floor.js";

/** Everything bench.json holds. */
export interface BenchResult {
  readonly schema: "unclip-bench/1";
  readonly startedAt: string;
  readonly seconds: number;
  readonly commit: string;
  readonly config: BenchConfig & { readonly maxWaitMs: number; readonly farmEnv: Readonly<Record<string, string>> };
  readonly machine: {
    readonly cores: number;
    readonly cpu: string;
    readonly guard: GuardVerdict;
    readonly phases: readonly PhaseLoad[];
    /** Every 2 s sample of the run. */
    readonly windows: readonly LoadWindow[];
    readonly loadAfter: readonly number[];
  };
  readonly figures: readonly Figure[];
  readonly saturation: { readonly 64: readonly SaturationRound[]; readonly 1024: readonly SaturationRound[] };
  readonly hops: readonly HopRow[];
  readonly floor: TransportFloor;
  readonly breakdown1024: {
    readonly jobs: number;
    readonly rows: readonly BreakdownRow[];
    readonly farmMs: Percentiles;
    readonly inProcessMs: Percentiles;
    /** The segments of the job with the median latency (the plot). */
    readonly medianJob: readonly Segment[];
    /** In-process time of each operation of the same image, p50 over the paired runs. */
    readonly inProcessOpsMs: Readonly<Record<string, number>>;
  };
  readonly idle64: { readonly farmMs: readonly number[]; readonly inProcessMs: readonly number[] };
  readonly decoderBatchGain: { readonly batch8ImagesPerSecond: readonly number[]; readonly batch1ImagesPerSecond: readonly number[] };
}

export function figureTable(figures: readonly Figure[]): string {
  const lines = ["| figure | value | target | verdict | busy | latency p50 / p99 (ms) | made of |", "|---|---:|---|---|---|---|---|"];
  for (const f of figures) {
    const value = f.unit === "ms" ? `${fmt(f.value)} ms` : fmt(f.value, 3);
    const target = f.target ? `${f.target.op === ">=" ? "≥" : "≤"} ${f.target.value}${f.unit === "ms" ? " ms" : ""}` : "–";
    const missedBy = f.unit === "ms" ? `${fmt(f.missedBy ?? Number.NaN)} ms` : fmt(f.missedBy ?? Number.NaN, 3);
    const verdict = f.verdict === "MISSED" ? `**MISSED** by ${missedBy}` : f.verdict ? `**MET** (${value})` : "–";
    const latency = Object.entries(f.latencyMs)
      .map(([k, p]) => `${k}: ${fmtP(p, 0)}`)
      .join("; ");
    lines.push(`| ${f.name} | ${value} | ${target} | ${verdict} | ${f.busy ? "**busy: true**" : "no"} | ${latency || "–"} | ${f.detail} |`);
  }
  return lines.join("\n");
}

export function markdown(r: BenchResult): string {
  const c = r.config;
  const out: string[] = [
    `# npm run bench: ${r.startedAt}, commit ${r.commit}, ${(r.seconds / 60).toFixed(1)} min`,
    "",
    `Bundle ${c.bundle} (prior ${c.priorSteps} steps, decoder ${c.decoderSteps} steps), upscaler ${c.upscaler}; worker batches ` +
      `prior 16, decoder 8, upscale 4 on both sides; one worker per pool unless UNCLIP_FARM_WORKERS says otherwise; ` +
      `${r.machine.cores} cores (${r.machine.cpu}).`,
  ];
  if (c.quick) out.push("", "**BENCH_QUICK=1: a smoke run with a couple of images per figure. These are not the benchmark's figures.**");
  if (r.machine.guard.busy)
    out.push("", `**The machine was busy at the start (${r.machine.guard.reasons.join("; ")}); run forced with BENCH_FORCE=1.**`);
  out.push("", figureTable(r.figures));

  out.push("", `## Hops: one-image jobs on the idle farm (UNCLIP_MAX_WAIT_MS = ${c.maxWaitMs})`, "");
  out.push(
    "| hop | jobs | task bytes | PNG | hop p50 / p99 (ms) | model end → stageFinished (S3 put ∥ publish, events) | model end → task published | pull → batch start | floor: JetStream cycle | + S3 put | = floor | hop ÷ floor | S3 get of the PNG (not in the hop when the task carries it) |",
    "|---|---:|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
  );
  for (const h of r.hops) {
    out.push(
      `| ${h.hop} | ${h.samples} | ${h.taskBytes} | ${h.pngSize ? `${h.pngSize} px` : "–"} | ${fmtP(h.hopMs)} | ${fmt(h.putMs.p50)} | ${fmt(h.publishMs.p50)} | ` +
        `${fmt(h.receiveMs.p50)} | ${fmt(h.floorJsMs, 2)} | ${fmt(h.floorPutMs, 2)} | ${fmt(h.floorMs, 2)} | ${fmt(h.ratio, 2)} | ${h.pngSize ? fmt(h.floorGetMs, 2) : "–"} |`,
    );
  }
  out.push("", "| bare transport | bytes | p50 / p99 (ms) |", "|---|---:|---:|");
  for (const j of r.floor.js) out.push(`| JetStream publish → pull → ackAck | ${j.bytes} | ${fmtP(j.cycleMs, 2)} |`);
  for (const s of r.floor.s3) {
    out.push(
      `| S3 put, ${s.size} px PNG | ${s.bytes} | ${fmtP(s.putMs, 2)} |`,
      `| S3 get, ${s.size} px PNG | ${s.bytes} | ${fmtP(s.getMs, 2)} |`,
    );
  }

  const b = r.breakdown1024;
  out.push("", `## Latency of a one-image 1024 px job on the idle farm (${b.jobs} job(s))`, "");
  out.push("| part | kind | p50 (ms) | p99 (ms) | how |", "|---|---|---:|---:|---|");
  for (const row of b.rows) out.push(`| ${row.part} | ${row.kind} | ${fmt(row.ms.p50)} | ${fmt(row.ms.p99)} | ${row.how} |`);
  out.push(
    `| **submit → completed (client)** | | **${fmt(b.farmMs.p50)}** | **${fmt(b.farmMs.p99)}** | measured |`,
    `| the same work in process (stages + final PNG) | | ${fmt(b.inProcessMs.p50)} | ${fmt(b.inProcessMs.p99)} | measured |`,
    "",
    `In-process operations of the same image, p50 (ms): ${Object.entries(b.inProcessOpsMs)
      .map(([k, v]) => `${k} ${fmt(v)}`)
      .join(", ")}.`,
  );

  out.push(
    "",
    "## Saturation rounds",
    "",
    "| size | round | order | images | in process (images/s) | farm (images/s) | farm ÷ in process |",
  );
  out.push("|---|---:|---|---:|---:|---:|---:|");
  for (const size of [64, 1024] as const) {
    r.saturation[size].forEach((s, i) => {
      const a = s.inProcess.images / s.inProcess.seconds;
      const f = s.farm.images / s.farm.seconds;
      out.push(`| ${size} px | ${i + 1} | ${s.order} | ${s.farm.images} | ${fmt(a, 2)} | ${fmt(f, 2)} | ${fmt(f / a, 3)} |`);
    });
  }
  out.push(...cpuTable(r.saturation));

  out.push(
    "",
    "## Machine",
    "",
    `Before the run: load average ${r.machine.guard.load.join(", ")}; other processes ${fmt(r.machine.guard.window.otherCores, 2)} cores.`,
  );
  out.push(
    "",
    "| phase | s | other processes' CPU mean / max (cores) | machine busy | busy | busiest other processes |",
    "|---|---:|---:|---:|---|---|",
  );
  for (const p of r.machine.phases) {
    const top = p.top.map((o) => `${o.comm} ${fmt(o.cores, 2)}`).join(", ");
    out.push(
      `| ${p.phase} | ${fmt(p.seconds, 0)} | ${fmt(p.otherCoresMean, 2)} / ${fmt(p.otherCoresMax, 2)} | ${fmt(p.machineBusyMean * 100, 0)} % | ${p.busy ? "**yes**" : "no"} | ${top || "–"} |`,
    );
  }
  return `${out.join("\n")}\n`;
}

/**
 * CPU milliseconds per image of each farm process during the saturation rounds, next to the in-process pipelines':
 * where the cost of distribution goes on cores that the models would otherwise have.
 */
function cpuTable(saturation: BenchResult["saturation"]): string[] {
  const perImage = (rounds: readonly SaturationRound[], cpu: (r: SaturationRound) => number) =>
    (rounds.reduce((a, r) => a + cpu(r), 0) / rounds.reduce((a, r) => a + r.farm.images, 0)) * 1000;
  const names = [...new Set([64, 1024].flatMap((size) => saturation[size as 64 | 1024].flatMap((r) => Object.keys(r.farmCpuSeconds))))];
  const out = [
    "",
    "CPU time per image during the saturation rounds (ms of one core; /proc utime + stime of each process):",
    "",
    `| size | ${names.join(" | ")} | farm, all | in process | farm ÷ in process |`,
    `|---|${names.map(() => "---:|").join("")}---:|---:|---:|`,
  ];
  for (const size of [64, 1024] as const) {
    const rounds = saturation[size];
    if (rounds.length === 0) continue;
    const each = names.map((n) => perImage(rounds, (r) => r.farmCpuSeconds[n] ?? 0));
    const farmAll = each.reduce((a, b) => a + b, 0);
    const local = perImage(rounds, (r) => r.inProcessCpuSeconds);
    out.push(
      `| ${size} px | ${each.map((v) => fmt(v, 1)).join(" | ")} | ${fmt(farmAll, 1)} | ${fmt(local, 1)} | ${fmt(farmAll / local, 3)} |`,
    );
  }
  return out;
}
