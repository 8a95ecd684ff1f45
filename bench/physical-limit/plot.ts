import sharp from "sharp";
import * as vega from "vega";
import { compile, type TopLevelSpec } from "vega-lite";
import type { Segment } from "./breakdown.js";
import { rate, type HopRow, type SaturationRound } from "./figures.js";

/** Renders a vega-lite spec headless to SVG, then to PNG with sharp (as bench/scale-sim/plot.ts). */
async function render(spec: TopLevelSpec): Promise<Buffer> {
  const view = new vega.View(vega.parse(compile(spec).spec), { renderer: "none" });
  const svg = await view.toSVG(2);
  view.finalize();
  return sharp(Buffer.from(svg)).png().toBuffer();
}

const SCHEMA = "https://vega.github.io/schema/vega-lite/v6.json";

/** Images/s of each side at each size: bars for all rounds together, a dot per round. */
export function plotThroughput(saturation: { 64: readonly SaturationRound[]; 1024: readonly SaturationRound[] }): Promise<Buffer> {
  const panel = (size: 64 | 1024) => {
    const rounds = saturation[size];
    const bars = [
      { side: "in process", rate: rate(rounds.map((r) => r.inProcess)) },
      { side: "farm", rate: rate(rounds.map((r) => r.farm)) },
    ];
    const dots = rounds.flatMap((r, i) => [
      { side: "in process", rate: r.inProcess.images / r.inProcess.seconds, round: i + 1 },
      { side: "farm", rate: r.farm.images / r.farm.seconds, round: i + 1 },
    ]);
    const ratio = bars[1]!.rate / bars[0]!.rate;
    const x = { field: "side", type: "nominal" as const, title: null, sort: ["in process", "farm"], axis: { labelAngle: 0 } };
    return {
      title: `${size} px: farm ÷ in process = ${Number.isFinite(ratio) ? ratio.toFixed(3) : "–"}`,
      width: 220,
      height: 220,
      layer: [
        {
          data: { values: bars },
          mark: { type: "bar" as const },
          encoding: {
            x,
            y: { field: "rate", type: "quantitative" as const, title: "images/s" },
            color: { field: "side", type: "nominal" as const, legend: null },
          },
        },
        {
          data: { values: dots },
          mark: { type: "point" as const, filled: true, color: "black" },
          encoding: { x, y: { field: "rate", type: "quantitative" as const } },
        },
        {
          // The target: the farm at 0.95 of the in-process rate.
          data: { values: [{ rate: 0.95 * bars[0]!.rate, label: "target 0.95 × in process" }] },
          layer: [
            {
              mark: { type: "rule" as const, strokeDash: [4, 4], color: "black" },
              encoding: { y: { field: "rate", type: "quantitative" as const } },
            },
            {
              mark: { type: "text" as const, align: "right" as const, dy: -6, x: 218 },
              encoding: { y: { field: "rate", type: "quantitative" as const }, text: { field: "label", type: "nominal" as const } },
            },
          ],
        },
      ],
    };
  };
  return render({
    $schema: SCHEMA,
    title: "Saturation throughput (bars: all rounds; dots: each round)",
    background: "white",
    hconcat: [panel(64), panel(1024)],
  });
}

/** The median 1024 px job as a timeline: one bar per part, coloured by kind. */
export function plotBreakdown(segments: readonly Segment[], title: string): Promise<Buffer> {
  const values = segments.map((s, i) => ({
    part: `${String(i + 1).padStart(2, "0")} ${s.part}${s.how === "measured" ? "" : ` (${s.how})`}`,
    kind: s.kind,
    start: s.startMs,
    end: s.startMs + Math.max(0, s.ms),
    ms: s.ms,
  }));
  return render({
    $schema: SCHEMA,
    title,
    background: "white",
    width: 640,
    height: { step: 16 },
    data: { values },
    mark: { type: "bar" },
    encoding: {
      y: { field: "part", type: "nominal", title: null, sort: null, axis: { labelLimit: 560 } },
      x: { field: "start", type: "quantitative", title: "ms after submit" },
      x2: { field: "end" },
      color: { field: "kind", type: "nominal", title: "kind" },
      tooltip: [{ field: "ms", type: "quantitative", format: ".1f" }],
    },
  });
}

/** Each hop's p50 next to its floor. */
export function plotHops(rows: readonly HopRow[]): Promise<Buffer> {
  const values = rows.flatMap((r) => [
    { hop: r.hop, series: "farm hop p50", ms: r.hopMs.p50 },
    { hop: r.hop, series: "floor (JetStream cycle + S3 put)", ms: r.floorMs },
  ]);
  const series = ["farm hop p50", "floor (JetStream cycle + S3 put)"];
  return render({
    $schema: SCHEMA,
    title: "Stage hops on the idle farm against the bare transport",
    background: "white",
    width: { step: 56 },
    height: 260,
    data: { values: values.filter((v) => Number.isFinite(v.ms)) },
    mark: { type: "bar" },
    encoding: {
      x: { field: "hop", type: "nominal", title: null, sort: null, axis: { labelAngle: 0, labelLimit: 240 } },
      xOffset: { field: "series", type: "nominal", sort: series },
      y: { field: "ms", type: "quantitative", title: "ms" },
      color: {
        field: "series",
        type: "nominal",
        title: null,
        sort: series,
        legend: { orient: "bottom", direction: "vertical", labelLimit: 480 },
      },
    },
  });
}
