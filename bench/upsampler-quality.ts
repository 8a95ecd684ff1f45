// Upsampler benchmark: how round the farm's 1024 px circles and how straight its squares' and triangles' sides come out
// of 64 → 256 → 1024 upscaling by bicubic, ESRGAN-slim as the upscale worker runs it, and the in-domain shapes
// upsamplers (models/shapes-upsamplers). Inputs: the world's hard-edged 64 px renders of bench/upsampler-eval/ (with
// the analytic 1024 px render as reference: PSNR, SSIM) and the decoder's own 64 px images (models/shapes-v1, no
// reference). Also the CPU and wall time of each pass and the seams of tiled runs. Writes out/bench/upsamplers.md,
// upsamplers.json and upsamplers-crops.png (upsampler-report.ts has the metric definitions; outline-metrics.ts the code).
// usage: npm run upsampler-quality -w @unclip/bench [-- --bundle DIR --esrgan-per-shape N --out DIR]
import { mkdir, writeFile } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import type { RgbImage } from "@unclip/upscaler";
import { decodeShapes } from "./decoded-shapes.js";
import { writeEdgeCrops, type Panel } from "./edge-crops.js";
import {
  circleDistance,
  edgeRoughness,
  type ObjectColours,
  objectColours,
  objectness,
  straightEdgeDeviation,
  traceOutline,
} from "./outline-metrics.js";
import { bicubic, nearest } from "./upscale-images.js";
import { psnr, ssim } from "./upscale-metrics.js";
import { loadEvalScenes } from "./upsampler-eval-set.js";
import {
  bicubicMethod,
  FARM_OPTIONS,
  loadEsrganSlim,
  loadShapesUpsamplers,
  tileSeams,
  timedPass,
  type UpscaleMethod,
  upscalerMethod,
} from "./upsampler-methods.js";
import {
  type BenchResult,
  type ImageResult,
  type Metrics,
  type MethodResult,
  type Role,
  renderReport,
  targets,
} from "./upsampler-report.js";

const here = path.dirname(fileURLToPath(import.meta.url));
const { values } = parseArgs({
  options: {
    bundle: { type: "string", default: path.join(here, "..", "models", "shapes-upsamplers") },
    scenes: { type: "string", default: path.join(here, "upsampler-eval") },
    decoder: { type: "string", default: path.join(here, "..", "models", "shapes-v1") },
    "esrgan-per-shape": { type: "string", default: "4" },
    out: { type: "string", default: path.join(here, "..", "out", "bench") },
  },
});
const esrganPerShape = Number(values["esrgan-per-shape"]);
if (!Number.isInteger(esrganPerShape) || esrganPerShape < 1)
  throw new Error(`--esrgan-per-shape: ${values["esrgan-per-shape"]} is not a positive integer`);

const SIZE = 1024;
const SCALE = SIZE / 64;
/** PSNR/SSIM border: one 64 px input pixel, the usual "crop the scale" of super-resolution scores. */
const BORDER = SCALE;
const CORNERS: Record<string, number> = { square: 4, triangle: 3 };
const CROP = 256;

interface Item {
  source: ImageResult["source"];
  name: string;
  shape: string;
  low: RgbImage;
  reference?: RgbImage;
  /** Read from the 64 px input, so that every method's output is measured on the same colour axis. */
  colours: ObjectColours;
}

const log = (message: string) => console.error(`[${new Date().toISOString().slice(11, 19)}] ${message}`);

function measure(item: Item, image: RgbImage): Metrics {
  const metrics: Metrics = {};
  if (item.reference) {
    metrics.psnr = psnr(item.reference, image, BORDER);
    metrics.ssim = ssim(item.reference, image, BORDER);
  }
  if (item.shape === "circle" || item.shape in CORNERS) {
    const outline = traceOutline(objectness(image, item.colours), image.width, image.height);
    if (item.shape === "circle") {
      metrics.roughness = edgeRoughness(outline);
      metrics.circleDistance = circleDistance(outline);
    } else metrics.straightEdge = straightEdgeDeviation(outline, CORNERS[item.shape]);
  }
  return metrics;
}

/** The first `perShape` circles, squares and triangles of `items`. */
function firstOfEachShape(items: Item[], perShape: number): Item[] {
  return ["circle", "square", "triangle"].flatMap((shape) => items.filter((i) => i.shape === shape).slice(0, perShape));
}

const scenes = await loadEvalScenes(values.scenes);
const world: Item[] = scenes.map((s) => ({
  source: "world",
  name: s.name,
  shape: s.shape,
  low: s.low,
  reference: s.reference1024,
  colours: objectColours(s.low),
}));
log(`${world.length} world scenes; decoding the decoder's own shapes with ${values.decoder}`);
const decoded = await decodeShapes(values.decoder, path.join(here, "..", "models", "train", "eval_set.json"));
const fromDecoder: Item[] = decoded.kept.map((d) => ({
  source: "decoder",
  name: d.name,
  shape: d.shape,
  low: d.image,
  colours: objectColours(d.image),
}));
const items = [...world, ...fromDecoder];
// The figure's circle: the first large world circle; the crop straddles its outline at 45° up-right. ESRGAN runs on
// it too, whatever the subset.
const cropScene = scenes.find((s) => s.shape === "circle" && s.size === "large")!;
const esrganSubset = firstOfEachShape(world, esrganPerShape);
const esrganItems = [
  ...(esrganSubset.some((i) => i.name === cropScene.name) ? [] : world.filter((i) => i.name === cropScene.name)),
  ...esrganSubset,
  ...firstOfEachShape(fromDecoder, esrganPerShape),
];
const cropAt = (c: number, sign: number) =>
  Math.round(Math.min(SIZE - CROP, Math.max(0, (c + (sign * cropScene.r) / Math.SQRT2) * SCALE - CROP / 2)));
const [cropX, cropY] = [cropAt(cropScene.cx, 1), cropAt(cropScene.cy, -1)];
const panels: Panel[] = [
  { label: "analytic reference", image: cropScene.reference1024 },
  { label: "64 px input, nearest ×16", image: await nearest(cropScene.low, SIZE, SIZE) },
];

const shapes = await loadShapesUpsamplers(values.bundle);
const esrgan = await loadEsrganSlim();
const { manifest } = shapes;
const bundleBackProjection = shapes.upscaler.settings.backProjection ?? FARM_OPTIONS.backProjection;
const shapesRuns = [...new Set([bundleBackProjection, 0, 1])].sort((a, b) => a - b);
/** `label`: the figure's caption. */
const runs: { method: UpscaleMethod; label: string; role: Role; backProjection?: number; items: Item[] }[] = [
  { method: bicubicMethod, label: "bicubic", role: "bicubic", items },
  {
    method: upscalerMethod("esrgan-slim + back-projection, tiled 128/16", esrgan, FARM_OPTIONS),
    label: "esrgan-slim (farm today)",
    role: "esrgan",
    items: esrganItems,
  },
  ...shapesRuns.map((backProjection) => ({
    method: upscalerMethod(
      `shapes-upsamplers, back-projection ${backProjection}${backProjection === bundleBackProjection ? " (bundle default)" : ""}`,
      shapes.upscaler,
      { backProjection },
    ),
    label: `shapes-upsamplers bp ${backProjection}`,
    role: "shapes" as const,
    backProjection,
    items,
  })),
];

const methods: MethodResult[] = [];
for (const run of runs) {
  log(`${run.method.name}: ${run.items.length} images`);
  // warm-up: session arenas, thread pools, libvips caches
  await run.method.pass(await run.method.pass(items[0].low));
  const images: ImageResult[] = [];
  for (const item of run.items) {
    const first = await timedPass(run.method, item.low);
    const second = await timedPass(run.method, first.output);
    if (item.name === cropScene.name) panels.push({ label: run.label, image: second.output });
    images.push({
      source: item.source,
      image: item.name,
      shape: item.shape,
      ...measure(item, second.output),
      passes: [
        { cpuMs: first.cpuMs, wallMs: first.wallMs },
        { cpuMs: second.cpuMs, wallMs: second.wallMs },
      ],
    });
  }
  methods.push({ name: run.method.name, role: run.role, backProjection: run.backProjection, images });
}

log("sanity rows");
// Outline metrics only: these rows calibrate them, and PSNR/SSIM at 1024 px would cost more than the rest of a row.
const sanity = async (name: string, items: Item[], make: (item: Item) => Promise<RgbImage>) => {
  const images: ImageResult[] = [];
  for (const item of items)
    images.push({
      source: item.source,
      image: item.name,
      shape: item.shape,
      ...measure({ ...item, reference: undefined }, await make(item)),
    });
  methods.push({ name, role: "sanity", images });
};
await sanity("sanity: analytic 1024 px reference", world, async (item) => item.reference!);
await sanity("sanity: nearest ×16 in one step", items, (item) => nearest(item.low, SIZE, SIZE));
await sanity("sanity: bicubic ×16 in one step", items, (item) => bicubic(item.low, SIZE, SIZE));

log("tile seams");
const seamScenes = ["circle", "square", "triangle"].map((shape) => scenes.find((s) => s.shape === shape)!);
const seamInputs = seamScenes.map((s) => s.reference256);
const seamNames = seamScenes.map((s) => s.name);
const seams = [
  { method: "shapes-upsamplers up1024.onnx", images: seamNames, stats: await tileSeams(shapes.upscaler, seamInputs) },
  { method: "esrgan-slim", images: seamNames, stats: await tileSeams(esrgan, seamInputs) },
];
await Promise.all([shapes.upscaler.close(), esrgan.close()]);

const result: BenchResult = {
  date: new Date().toISOString(),
  machine: `${os.cpus().length} CPUs (${os.cpus()[0]?.model.trim()}), load average ${os.loadavg()[0].toFixed(1)} at the end, node ${process.version}`,
  bundle: {
    dir: path.relative(process.cwd(), values.bundle),
    name: manifest.name,
    version: manifest.version,
    backProjection: bundleBackProjection,
    training: manifest.training,
  },
  decoded: decoded.counts,
  prompts: Object.fromEntries(decoded.kept.map((d) => [d.name, d.prompt])),
  esrganSubset: {
    world: esrganItems.filter((i) => i.source === "world").map((i) => i.name),
    decoder: esrganItems.filter((i) => i.source === "decoder").map((i) => i.name),
  },
  methods,
  seams,
};
const goals = targets(result);
const report = renderReport(result, goals);
await mkdir(values.out, { recursive: true });
await writeFile(path.join(values.out, "upsamplers.md"), report);
await writeFile(path.join(values.out, "upsamplers.json"), JSON.stringify({ ...result, targets: goals }, null, 1) + "\n");
await writeEdgeCrops(path.join(values.out, "upsamplers-crops.png"), panels, cropX, cropY, CROP);
console.log(report);
log(`wrote upsamplers.md, upsamplers.json and upsamplers-crops.png (${cropScene.name}) in ${values.out}`);
