import type { PipelineRun } from "./inprocess.js";
import type { HopSample } from "./job-timeline.js";
import { mean, percentiles, quantile, type Percentiles } from "./stats.js";
import type { TransportFloor } from "./transport-floor.js";

/** A target of GitHub issue 17, as stated there. */
export interface Target {
  readonly op: ">=" | "<=";
  readonly value: number;
}

export const TARGETS = {
  farm_vs_inprocess_64: { op: ">=", value: 0.95 },
  farm_vs_inprocess_1024: { op: ">=", value: 0.95 },
  hop_vs_floor: { op: "<=", value: 1.3 },
  overhead_ms_p50_64: { op: "<=", value: 30 },
} as const satisfies Record<string, Target>;

export interface Figure {
  readonly name: string;
  readonly value: number;
  readonly unit: "ratio" | "ms";
  readonly target?: Target;
  /** MET or MISSED against the target; absent for a figure without one. A figure that could not be measured is MISSED. */
  readonly verdict?: "MET" | "MISSED";
  /** How far a MISSED figure is from its target, in the figure's unit (NaN when it could not be measured). */
  readonly missedBy?: number;
  /** The machine was busy while this figure was measured (or the run was forced on a busy machine). */
  readonly busy: boolean;
  /** One line: what the value is made of. */
  readonly detail: string;
  /** Latencies behind the figure, p50 / p99 in ms. */
  readonly latencyMs: Readonly<Record<string, Percentiles>>;
}

export function withVerdict(f: Omit<Figure, "verdict" | "missedBy">): Figure {
  if (!f.target) return f;
  const ok = Number.isFinite(f.value) && (f.target.op === ">=" ? f.value >= f.target.value : f.value <= f.target.value);
  return ok ? { ...f, verdict: "MET" } : { ...f, verdict: "MISSED", missedBy: Math.abs(f.value - f.target.value) };
}

/** One saturation round: the same images in process and on the farm, one after the other. */
export interface SaturationRound {
  readonly order: "in-process first" | "farm first";
  readonly inProcess: PipelineRun;
  readonly farm: PipelineRun;
  /**
   * CPU seconds each process used during the farm's run: the gateway, each worker, nats-server, and this process
   * (the gRPC client following every job, and the embedded S3 server).
   */
  readonly farmCpuSeconds: Readonly<Record<string, number>>;
  /** CPU seconds of this process during the in-process run (the pipelines; the farm sits idle meanwhile). */
  readonly inProcessCpuSeconds: number;
}

export const rate = (runs: readonly PipelineRun[]) => runs.reduce((a, r) => a + r.images, 0) / runs.reduce((a, r) => a + r.seconds, 0);

export function saturationFigure(name: keyof typeof TARGETS, size: number, rounds: readonly SaturationRound[], busy: boolean): Figure {
  const farm = rate(rounds.map((r) => r.farm));
  const inProcess = rate(rounds.map((r) => r.inProcess));
  const perRound = rounds.map((r) => (r.farm.images / r.farm.seconds / (r.inProcess.images / r.inProcess.seconds)).toFixed(3)).join(", ");
  return withVerdict({
    name,
    value: farm / inProcess,
    unit: "ratio",
    target: TARGETS[name],
    busy,
    detail:
      `farm ${farm.toFixed(2)} images/s ÷ in process ${inProcess.toFixed(2)} images/s at ${size} px, ` +
      `${rounds[0]?.farm.images ?? 0} images × ${rounds.length} round(s) (per round: ${perRound})`,
    latencyMs: {
      "farm: submit → image": percentiles(rounds.flatMap((r) => r.farm.latenciesMs)),
      "in process: start → image": percentiles(rounds.flatMap((r) => r.inProcess.latenciesMs)),
    },
  });
}

/** A hop of the farm next to its floor: the same payload on bare JetStream, plus the S3 put of the same PNG. */
export interface HopRow {
  readonly hop: string;
  readonly samples: number;
  readonly pngSize: number;
  readonly taskBytes: number;
  readonly hopMs: Percentiles;
  readonly putMs: Percentiles;
  readonly publishMs: Percentiles;
  readonly receiveMs: Percentiles;
  /** JetStream cycle p50 + S3 put p50 (hops that store an image). */
  readonly floorMs: number;
  readonly floorJsMs: number;
  readonly floorPutMs: number;
  /** Bare S3 get of the PNG the next stage reads (inside its stage time, so in neither side of the ratio). */
  readonly floorGetMs: number;
  readonly ratio: number;
}

/** The p50 size of each hop's task message, by hop: the payloads the floor publishes. */
export function hopTaskBytes(samples: readonly HopSample[]): Map<string, number> {
  const sizes = new Map<string, number>();
  for (const hop of new Set(samples.map((s) => s.hop))) {
    const bytes = samples.filter((s) => s.hop === hop).map((s) => s.taskBytes);
    sizes.set(hop, Math.round(quantile(bytes, 0.5)));
  }
  return sizes;
}

export function hopRows(samples: readonly HopSample[], floor: TransportFloor): HopRow[] {
  return [...hopTaskBytes(samples)].map(([hop, taskBytes]) => {
    const of = samples.filter((s) => s.hop === hop);
    const pngSize = of[0]!.pngSize;
    const js = nearest(floor.js, taskBytes);
    const s3 = floor.s3.find((f) => f.size === pngSize);
    const floorJsMs = js?.cycleMs.p50 ?? Number.NaN;
    const floorPutMs = pngSize > 0 ? (s3?.putMs.p50 ?? Number.NaN) : 0;
    const floorMs = floorJsMs + floorPutMs;
    const hopMs = percentiles(of.map((s) => s.hopMs));
    return {
      hop,
      samples: of.length,
      pngSize,
      taskBytes,
      hopMs,
      putMs: percentiles(of.map((s) => s.putMs)),
      publishMs: percentiles(of.map((s) => s.publishMs)),
      receiveMs: percentiles(of.map((s) => s.receiveMs)),
      floorMs,
      floorJsMs,
      floorPutMs,
      floorGetMs: pngSize > 0 ? (s3?.getMs.p50 ?? Number.NaN) : 0,
      ratio: hopMs.p50 / floorMs,
    };
  });
}

/** The headline hop is decoder → upscale-256: the one hop with every part (publish, pull, decode, store, hand-off, ack). */
export const HEADLINE_HOP = "decoder → upscale-256";

export function hopFigure(rows: readonly HopRow[], busy: boolean): Figure {
  const row = rows.find((r) => r.hop === HEADLINE_HOP);
  return withVerdict({
    name: "hop_vs_floor",
    value: row?.ratio ?? Number.NaN,
    unit: "ratio",
    target: TARGETS.hop_vs_floor,
    busy,
    detail: row
      ? `${row.hop}: hop p50 ${row.hopMs.p50.toFixed(1)} ms ÷ floor ${row.floorMs.toFixed(1)} ms (JetStream cycle ${row.floorJsMs.toFixed(1)} + S3 put ${row.floorPutMs.toFixed(1)})`
      : `no ${HEADLINE_HOP} hop was measured`,
    latencyMs: row ? { "farm hop": row.hopMs, "receiving side (pull → batch start)": row.receiveMs } : {},
  });
}

export function overheadFigure(farmMs: readonly number[], inProcessMs: readonly number[], busy: boolean): Figure {
  const farm = percentiles(farmMs);
  const inProcess = percentiles(inProcessMs);
  return withVerdict({
    name: "overhead_ms_p50_64",
    value: farm.p50 - inProcess.p50,
    unit: "ms",
    target: TARGETS.overhead_ms_p50_64,
    busy,
    detail: `one-image 64 px job on the idle farm p50 ${farm.p50.toFixed(1)} ms − the same work in process p50 ${inProcess.p50.toFixed(1)} ms (${farm.n} pairs)`,
    latencyMs: { "farm: submit → completed": farm, "in process: prior + decoder + PNG": inProcess },
  });
}

export function batchGainFigure(batch8: readonly number[], batch1: readonly number[], busy: boolean): Figure {
  const b8 = mean(batch8);
  const b1 = mean(batch1);
  return withVerdict({
    name: "decoder_batch_gain",
    value: b8 / b1,
    unit: "ratio",
    busy,
    detail: `decoder in process (onnxruntime, same session): ${b8.toFixed(2)} images/s at batch 8 ÷ ${b1.toFixed(2)} images/s at batch 1`,
    latencyMs: {},
  });
}

function nearest<T extends { bytes: number }>(list: readonly T[], bytes: number): T | undefined {
  return [...list].sort((a, b) => Math.abs(a.bytes - bytes) - Math.abs(b.bytes - bytes))[0];
}
