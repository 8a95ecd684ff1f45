import sharp from "sharp";
import * as vega from "vega";
import { compile, type TopLevelSpec } from "vega-lite";
import type { KedaReplay } from "./keda-replay.js";

type Row = { t: number; series: string; value: number };
type Panel = Extract<TopLevelSpec, { vconcat: unknown }>["vconcat"][number];

/** Replicas, lag and queue wait over time, stacked on one time axis: an SVG rendered headless, and a PNG of it. */
export async function plotKedaReplay(replay: KedaReplay): Promise<{ svg: string; png: Buffer }> {
  const domain = [0, replay.points.at(-1)?.t ?? 0];
  // The first series of a panel is drawn solid, the second dashed.
  const panel = (title: string, yTitle: string, series: string[], rows: Row[], interpolate: "linear" | "step-after" = "linear"): Panel => ({
    title,
    width: 760,
    height: 150,
    data: { values: rows },
    mark: { type: "line", interpolate },
    encoding: {
      x: { field: "t", type: "quantitative", title: "seconds since start", scale: { domain } },
      y: { field: "value", type: "quantitative", title: yTitle },
      color: { field: "series", type: "nominal", title: null, scale: { domain: series } },
      strokeDash: {
        field: "series",
        type: "nominal",
        title: null,
        scale: {
          domain: series,
          range: [
            [1, 0],
            [6, 4],
          ],
        },
      },
    },
  });
  const spec: TopLevelSpec = {
    $schema: "https://vega.github.io/schema/vega-lite/v6.json",
    title: `KEDA replay: ${replay.pool} pool, lagThreshold ${replay.lagThreshold}, one batch ${replay.batchSeconds.toFixed(2)} s`,
    background: "white",
    resolve: { scale: { color: "independent", strokeDash: "independent" } },
    vconcat: [
      panel(
        "replicas (set every 15 s from lag) and the workers the arrival rate needs",
        "workers",
        ["replicas", "needed by load"],
        replay.points.flatMap((p) => [
          { t: p.t, series: "replicas", value: p.replicas },
          { t: p.t, series: "needed by load", value: p.neededWorkers },
        ]),
        "step-after",
      ),
      panel(
        "lag = num_pending + num_ack_pending of the pool's consumers (both lanes)",
        "tasks",
        ["lag"],
        replay.points.map((p) => ({ t: p.t, series: "lag", value: p.lag })),
      ),
      panel(
        "queue wait of the tasks started in each 5 s",
        "seconds",
        ["p50", "p99"],
        replay.waits.flatMap((w) => [
          { t: w.t, series: "p50", value: w.p50Seconds },
          { t: w.t, series: "p99", value: w.p99Seconds },
        ]),
      ),
    ],
  };
  const view = new vega.View(vega.parse(compile(spec).spec), { renderer: "none" });
  const svg = await view.toSVG(2);
  view.finalize();
  return { svg, png: await sharp(Buffer.from(svg)).png().toBuffer() };
}
