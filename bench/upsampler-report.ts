// The upsampler benchmark's results (upsampler-quality.ts), its targets, and their Markdown tables.
import type { SeamStats } from "./upsampler-methods.js";

export interface Metrics {
  /** Luma PSNR (dB) and SSIM against the analytic 1024 px reference (world renders only). */
  psnr?: number;
  ssim?: number;
  /** Circles: edge roughness and distance from the best-fit circle (px at 1024). */
  roughness?: number;
  circleDistance?: number;
  /** Squares and triangles: straight-edge deviation (px at 1024). */
  straightEdge?: number;
}

export interface PassCost {
  cpuMs: number;
  wallMs: number;
}

export interface ImageResult extends Metrics {
  source: "world" | "decoder";
  image: string;
  shape: string;
  /** 64 → 256 and 256 → 1024; absent for the warm-up-free sanity rows, which are not timed. */
  passes?: [PassCost, PassCost];
}

export type Role = "bicubic" | "esrgan" | "shapes" | "sanity";

export interface MethodResult {
  name: string;
  role: Role;
  /** shapes-upsamplers only: the back-projection iterations of this run. */
  backProjection?: number;
  images: ImageResult[];
}

export interface SeamResult {
  method: string;
  images: string[];
  stats: SeamStats;
}

export interface BenchResult {
  date: string;
  machine: string;
  bundle: { dir: string; name: string; version: string; backProjection: number; training: unknown };
  decoded: Record<string, { asked: number; kept: number }>;
  /** The prompt of each kept decoder image. */
  prompts: Record<string, string>;
  /** The images ESRGAN ran on (it costs seconds per image at 1024). */
  esrganSubset: Record<ImageResult["source"], string[]>;
  methods: MethodResult[];
  seams: SeamResult[];
}

export interface Target {
  target: string;
  method: string;
  value: number;
  threshold: number;
  met: boolean;
  /** How far inside (positive) or outside (negative) the threshold the value is, in the target's unit. */
  margin: number;
  unit: string;
}

const finite = (xs: (number | undefined)[]) => xs.filter((x): x is number => x !== undefined && Number.isFinite(x));
const mean = (xs: number[]) => (xs.length ? xs.reduce((a, b) => a + b, 0) / xs.length : NaN);
/** The q-quantile with linear interpolation between the sorted values. */
export function quantile(xs: number[], q: number): number {
  if (!xs.length) return NaN;
  const sorted = [...xs].sort((a, b) => a - b);
  const at = q * (sorted.length - 1);
  const lo = Math.floor(at);
  return sorted[lo] + (sorted[Math.min(lo + 1, sorted.length - 1)] - sorted[lo]) * (at - lo);
}

const select = (m: MethodResult, source: ImageResult["source"], shapes: string[], names?: Set<string>) =>
  m.images.filter((r) => r.source === source && shapes.includes(r.shape) && (!names || names.has(r.image)));
const values = (rs: ImageResult[], key: keyof Metrics) => finite(rs.map((r) => r[key]));
const medianOf = (m: MethodResult, source: ImageResult["source"], shape: string, key: keyof Metrics) =>
  quantile(values(select(m, source, [shape]), key), 0.5);
const meanPsnr = (m: MethodResult, names?: Set<string>) =>
  mean(
    values(
      m.images.filter((r) => r.source === "world" && (!names || names.has(r.image))),
      "psnr",
    ),
  );
const passCost = (m: MethodResult, pass: 0 | 1, key: keyof PassCost) =>
  mean(m.images.flatMap((r) => (r.passes ? [r.passes[pass][key]] : [])));

export function targets(result: BenchResult): Target[] {
  const byRole = (role: Role) => result.methods.filter((m) => m.role === role);
  const [bicubic] = byRole("bicubic");
  const [esrgan] = byRole("esrgan");
  const subset = new Set(result.esrganSubset.world);
  return byRole("shapes").flatMap((m) => {
    const roughness = medianOf(m, "decoder", "circle", "roughness");
    const distance = medianOf(m, "decoder", "circle", "circleDistance");
    const bicubicDistance = medianOf(bicubic, "decoder", "circle", "circleDistance");
    const psnrGain = meanPsnr(m, subset) - meanPsnr(esrgan, subset);
    const speedup = passCost(esrgan, 1, "cpuMs") / passCost(m, 1, "cpuMs");
    const row = (target: string, value: number, threshold: number, higherIsBetter: boolean, unit: string): Target => {
      const margin = higherIsBetter ? value - threshold : threshold - value;
      return { target, method: m.name, value, threshold, met: margin >= 0, margin, unit };
    };
    return [
      row("median edge roughness, decoder circles ≤ 1.0 px", roughness, 1, false, "px"),
      row("median circle distance, decoder circles ≤ bicubic's", distance, bicubicDistance, false, "px"),
      row("PSNR on world renders ≥ ESRGAN + 3 dB (ESRGAN's subset)", psnrGain, 3, true, "dB over ESRGAN"),
      row("256→1024 CPU time: ESRGAN-slim tiled / this ≥ 4", speedup, 4, true, "×"),
    ];
  });
}

const f = (v: number, digits = 2) => (Number.isFinite(v) ? v.toFixed(digits) : "–");
const spread = (xs: number[]) => (xs.length ? `${f(quantile(xs, 0.5))} / ${f(quantile(xs, 0.9))}` : "–");

export function renderReport(result: BenchResult, goals: Target[]): string {
  const subset = new Set(result.esrganSubset.world);
  const esrganWorld = result.esrganSubset.world.length;
  const esrganDecoder = result.esrganSubset.decoder.length;
  const lines: string[] = [];
  const out = (...ls: string[]) => lines.push(...ls);
  const { bundle } = result;
  out(
    `# Upsampler benchmark: 64 → 256 → 1024 px`,
    "",
    `${result.date}; ${result.machine}. Bundle ${bundle.name}@${bundle.version} (${bundle.dir}), back-projection default ${bundle.backProjection}, ` +
      `training: \`${JSON.stringify(bundle.training)}\`.`,
    "",
    "Methods, each as two x4 passes: **bicubic** (sharp's Catmull-Rom); **esrgan-slim** " +
      "as the upscale worker runs it (128 px tiles, 16 px overlap, one back-projection; the 64 px input is one tile); " +
      "**shapes-upsamplers** as the worker runs that bundle (loadUpscaler picks up256.onnx for 64 px inputs and " +
      "up1024.onnx for 256 px by `bySide`; the bundle's tile size 1024 runs each image whole), with 0 and 1 " +
      `back-projection iterations. ESRGAN runs on a subset only (${esrganWorld} world scenes and ${esrganDecoder} decoder ` +
      "images, the first circles, squares and triangles of each: it takes seconds per image); " +
      "its PSNR is compared with the others' on the same subset. Sanity rows are not upscaled in two passes: the analytic " +
      "1024 px render itself, and the 64 px image enlarged ×16 in one step (nearest: the blown-up staircase; bicubic).",
    "",
    "Metrics at 1024 px (lengths in px at 1024; one 64 px pixel is 16): object-ness = each pixel's colour projected onto " +
      "the background→object colour axis (colours from the 64 px input), outline = outermost 0.5 crossing along 720 rays " +
      "from the centroid. **Roughness**: RMS residual of r(θ) after a least-squares Fourier fit up to harmonic 8. " +
      "**Circle distance**: RMS of r − R after a geometric least-squares circle fit. **Straight edge**: per side " +
      "(corners = outline points farthest from the centroid), the points in the middle 70 % of the corner-to-corner chord, " +
      "RMS perpendicular distance from their total-least-squares line, pooled over the sides. PSNR/SSIM: luma (BT.601), " +
      "16 px border cropped. Values are median / p90 over images unless marked mean.",
    "",
    `## World renders (${result.methods[0].images.filter((r) => r.source === "world").length} scenes: the hard-edged 64 px world render in, the analytic 1024 px render as reference)`,
    "",
    `| method | images | PSNR dB (mean) | SSIM (mean) | PSNR dB on ESRGAN's ${esrganWorld} | circle roughness | circle distance | straight edge, squares | straight edge, triangles |`,
    "|---|---|---|---|---|---|---|---|---|",
  );
  for (const m of result.methods) {
    const world = m.images.filter((r) => r.source === "world");
    if (!world.length) continue;
    out(
      `| ${m.name} | ${world.length} | ${f(mean(values(world, "psnr")))} | ${f(mean(values(world, "ssim")), 4)} | ${f(meanPsnr(m, subset))} | ` +
        `${spread(values(select(m, "world", ["circle"]), "roughness"))} | ${spread(values(select(m, "world", ["circle"]), "circleDistance"))} | ` +
        `${spread(values(select(m, "world", ["square"]), "straightEdge"))} | ${spread(values(select(m, "world", ["triangle"]), "straightEdge"))} |`,
    );
  }
  const counts = Object.entries(result.decoded)
    .map(([shape, c]) => `${c.kept}/${c.asked} ${shape}s`)
    .join(", ");
  out(
    "",
    `## The decoder's own 64 px images (shapes-v1, manifest defaults; kept when the checker reads the asked shape: ${counts})`,
    "",
    "| method | circles / squares / triangles | circle roughness | circle distance | straight edge, squares | straight edge, triangles |",
    "|---|---|---|---|---|---|",
  );
  for (const m of result.methods) {
    const n = (shape: string) => select(m, "decoder", [shape]).length;
    if (!n("circle") && !n("square") && !n("triangle")) continue;
    out(
      `| ${m.name} | ${n("circle")} / ${n("square")} / ${n("triangle")} | ${spread(values(select(m, "decoder", ["circle"]), "roughness"))} | ` +
        `${spread(values(select(m, "decoder", ["circle"]), "circleDistance"))} | ${spread(values(select(m, "decoder", ["square"]), "straightEdge"))} | ` +
        `${spread(values(select(m, "decoder", ["triangle"]), "straightEdge"))} |`,
    );
  }
  out(
    "",
    "## Speed per image (mean over the images each method ran, after a warm-up; CPU = process user + system over all threads)",
    "",
    "| method | images | 64→256 CPU ms | 64→256 wall ms | 256→1024 CPU ms | 256→1024 wall ms |",
    "|---|---|---|---|---|---|",
  );
  for (const m of result.methods.filter((m) => m.role !== "sanity")) {
    out(
      `| ${m.name} | ${m.images.length} | ${f(passCost(m, 0, "cpuMs"), 0)} | ${f(passCost(m, 0, "wallMs"), 0)} | ${f(passCost(m, 1, "cpuMs"), 0)} | ${f(passCost(m, 1, "wallMs"), 0)} |`,
    );
  }
  const esrgan = result.methods.find((m) => m.role === "esrgan")!;
  for (const m of result.methods.filter((m) => m.role === "shapes")) {
    out(
      "",
      `256→1024, esrgan-slim tiled / ${m.name}: ${f(passCost(esrgan, 1, "cpuMs") / passCost(m, 1, "cpuMs"), 1)}× CPU, ` +
        `${f(passCost(esrgan, 1, "wallMs") / passCost(m, 1, "wallMs"), 1)}× wall.`,
    );
  }
  out(
    "",
    "## Tile seams at 256→1024 (the analytic 256 px renders in; the farm's 128 px tiles with 16 px overlap vs the whole image, no back-projection; 8-bit levels over every pixel and channel)",
    "",
    "| net | images | max abs diff | mean abs diff | values off by > 2 |",
    "|---|---|---|---|---|",
  );
  for (const s of result.seams)
    out(`| ${s.method} | ${s.images.join(", ")} | ${s.stats.max} | ${f(s.stats.mean, 3)} | ${f(100 * s.stats.over2, 3)} % |`);
  out("", "## Targets", "", "| target | method | value | threshold | result |", "|---|---|---|---|---|");
  for (const g of goals) {
    const sign = g.margin >= 0 ? "+" : "−";
    out(
      `| ${g.target} | ${g.method} | ${f(g.value)} | ${f(g.threshold)} | ${g.met ? "**met**" : "**missed**"} (margin ${sign}${f(Math.abs(g.margin))} ${g.unit}) |`,
    );
  }
  return lines.join("\n") + "\n";
}
