import { Stage, stageName, stageOutputSize } from "@unclip/protocol";
import type { JobTimeline } from "./job-timeline.js";
import { percentiles, type Percentiles } from "./stats.js";

export type SegmentKind = "gateway" | "NATS" | "queue" | "model" | "S3" | "PNG";
/**
 * measured: the difference of two stamps taken in the farm. estimated: taken from a measurement outside the job (the
 * same operation in process, or on the bare S3 server), or a configured wait. derived: a measured interval minus the
 * estimated parts inside it.
 */
export type How = "measured" | "estimated" | "derived";

/** One contiguous piece of a job's latency; the pieces of a job tile it from submit to the completed event. */
export interface Segment {
  readonly part: string;
  readonly kind: SegmentKind;
  readonly how: How;
  /** Start, ms after submit. */
  readonly startMs: number;
  readonly ms: number;
}

/** What the job record and the events cannot separate, measured elsewhere in the same run (p50, ms). */
export interface Estimates {
  /** PNG encode by output side, and decode by input side, in process on the same images. */
  readonly pngEncodeMs: Readonly<Record<number, number>>;
  readonly pngDecodeMs: Readonly<Record<number, number>>;
  /** Bare S3 get of the same PNG, by side. */
  readonly s3GetMs: Readonly<Record<number, number>>;
}

export interface BreakdownRow {
  readonly part: string;
  readonly kind: SegmentKind;
  readonly how: How;
  readonly ms: Percentiles;
}

/** Cuts one job's timeline into segments, in order. */
export function jobSegments(t: JobTimeline, est: Estimates): Segment[] {
  const out: Segment[] = [];
  const add = (part: string, kind: SegmentKind, how: How, from: number, to: number) =>
    out.push({ part, kind, how, startMs: from - t.submitAtMs, ms: to - from });
  const first = t.stages[0]!;
  add("gRPC request in, validation, admission check", "gateway", "measured", t.submitAtMs, t.createdAtMs);
  add(`job record (KV create), ${stageName(first.stage)} task publish`, "gateway", "measured", t.createdAtMs, first.publishedAtMs);
  t.stages.forEach((s, i) => {
    const name = stageName(s.stage);
    // A lone task no longer waits UNCLIP_MAX_WAIT_MS for batch-mates (its delivery info says none wait behind it).
    add(`${name}: delivery to the open pull, decode, job check (KV), batching`, "NATS", "derived", s.publishedAtMs, s.startAtMs);
    let at = s.startAtMs;
    if (s.stage === Stage.UPSCALE_256 || s.stage === Stage.UPSCALE_1024) {
      const input = s.stage === Stage.UPSCALE_256 ? 64 : 256;
      // A task that carries its input image reads nothing from S3.
      const get = s.inlineImage ? 0 : (est.s3GetMs[input] ?? 0);
      const decode = est.pngDecodeMs[input] ?? 0;
      if (!s.inlineImage) add(`${name}: S3 get of the ${input} px input`, "S3", "estimated", at, at + get);
      add(`${name}: PNG decode ${input} px`, "PNG", "estimated", at + get, at + get + decode);
      at += get + decode;
    }
    const size = stageOutputSize(s.stage);
    const encode = size > 0 ? (est.pngEncodeMs[size] ?? 0) : 0;
    add(`${name}: model`, "model", size > 0 ? "derived" : "measured", at, s.endAtMs - encode);
    if (size > 0) add(`${name}: PNG encode ${size} px`, "PNG", "estimated", s.endAtMs - encode, s.endAtMs);
    const next = t.stages[i + 1];
    if (next) {
      // The next task's publish runs alongside the S3 put of an image it carries; a larger image is put first.
      const putFirst = size > 0 && !next.inlineImage;
      const alongside = size > 0 && next.inlineImage ? ` (S3 put of the ${size} px output alongside)` : "";
      const part = putFirst ? `S3 put of the ${size} px output, task publish` : `task publish${alongside}`;
      add(`${name} → ${stageName(next.stage)}: ${part}`, putFirst ? "S3" : "NATS", "measured", s.endAtMs, next.publishedAtMs);
    } else {
      add(`${name}: S3 put of the ${size} px output, events`, "S3", "measured", s.endAtMs, s.finishedAtMs);
      add("job record update (KV), image and completed events", "NATS", "measured", s.finishedAtMs, t.recordedAtMs);
    }
  });
  add("gateway: record watch, presigned URLs, gRPC event out", "gateway", "measured", t.recordedAtMs, t.receivedAtMs);
  return out;
}

/** p50 and p99 of each segment over jobs of the same route, in the order of the first job. */
export function breakdownRows(jobs: readonly Segment[][]): BreakdownRow[] {
  const first = jobs[0] ?? [];
  return first.map((seg, k) => ({
    part: seg.part,
    kind: seg.kind,
    how: seg.how,
    ms: percentiles(jobs.map((segs) => segs[k]?.ms ?? Number.NaN)),
  }));
}
