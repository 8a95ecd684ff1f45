// Quality and speed of the converted ESRGAN upscalers against plain bicubic (sharp's cubic kernel).
// esrgan-<v> raw is the network alone; esrgan-<v> adds one back-projection iteration (the upscaler's default).
// Quality: each reference image is shrunk by 4 with bicubic and brought back by 4; PSNR/SSIM on luma against the
// reference. Speed: CPU time (process user + system, all threads) and wall time per image for 64->256 and
// 256->1024, untiled and tiled, with bicubic timed in the same run.
// usage: npm run upscale -w @unclip/bench [-- --variants slim,medium]
import os from "node:os";
import { parseArgs } from "node:util";
import { type EsrganVariant, ensureEsrganBundle, loadUpscaler, type RgbImage, type UpscaleOptions, type Upscaler } from "@unclip/upscaler";
import { bicubic, generatedImages, packagedPhoto, type TestImage } from "./upscale-images.js";
import { psnr, ssim } from "./upscale-metrics.js";

const SCALE = 4;
const { values } = parseArgs({ options: { variants: { type: "string", default: "slim,medium" } } });
const variants = values.variants.split(",") as EsrganVariant[];

interface Timed {
  outputs: RgbImage[];
  cpuMs: number;
  wallMs: number;
}

/** Runs `run` on each image alone (batch of 1, as a worker serving one request would) and averages the cost. */
async function timed(images: RgbImage[], run: (image: RgbImage) => Promise<RgbImage>): Promise<Timed> {
  await run(images[0]); // warm-up: session arenas, thread pools, libvips caches
  const outputs: RgbImage[] = [];
  const cpu = process.cpuUsage();
  const wall = performance.now();
  for (const image of images) outputs.push(await run(image));
  const used = process.cpuUsage(cpu);
  return { outputs, cpuMs: (used.user + used.system) / 1000 / images.length, wallMs: (performance.now() - wall) / images.length };
}

const shrink = (images: TestImage[]) => Promise.all(images.map(({ image }) => bicubic(image, image.width / SCALE, image.height / SCALE)));
const bicubicUp = (image: RgbImage) => bicubic(image, image.width * SCALE, image.height * SCALE);
const viaModel = (upscaler: Upscaler, options: UpscaleOptions) => async (image: RgbImage) => (await upscaler.upscale([image], options))[0];
const fixed = (v: number, digits: number) => (Number.isFinite(v) ? v.toFixed(digits) : "inf");

const upscalers = new Map<EsrganVariant, Upscaler>();
for (const variant of variants)
  upscalers.set(variant, await loadUpscaler(await ensureEsrganBundle(variant, SCALE), { executionProvider: "cpu" }));

// Two passes the farm runs: 64 -> 256 and 256 -> 1024; tiled runs use tiles small enough to cut these inputs.
const passes = [
  { name: "64→256", references: [...(await generatedImages(256)), await packagedPhoto()], tiles: { tileSize: 32, overlap: 8 } },
  { name: "256→1024", references: await generatedImages(1024), tiles: { tileSize: 128, overlap: 16 } },
];

const qualityRows: string[] = [];
const speedRows: string[] = [];
const averages = new Map<string, { psnr: number[]; ssim: number[] }>();
const score = (method: string, pass: string, reference: RgbImage, output: RgbImage) => {
  const p = psnr(reference, output, SCALE);
  const s = ssim(reference, output, SCALE);
  for (const key of [`${method}`, `${method} ${pass}`]) {
    const entry = averages.get(key) ?? { psnr: [], ssim: [] };
    entry.psnr.push(p);
    entry.ssim.push(s);
    averages.set(key, entry);
  }
  return `${fixed(p, 2)} / ${s.toFixed(4)}`;
};

for (const pass of passes) {
  const low = await shrink(pass.references);
  // The photo is 128 px, so time only the same-sized (generated) images; score all of them.
  const sameSize = low.filter((image) => image.width === low[0].width);
  const methods: [string, Timed, Timed?][] = [];
  const bicubicFull = await timed(low, bicubicUp);
  const bicubicSpeed = await timed(sameSize, bicubicUp);
  methods.push(["bicubic", bicubicFull]);
  speedRows.push(`| ${pass.name} | bicubic (sharp) | – | ${fixed(bicubicSpeed.cpuMs, 1)} | ${fixed(bicubicSpeed.wallMs, 1)} | 1 |`);
  for (const [variant, upscaler] of upscalers) {
    // "raw": the network alone; the default adds one back-projection iteration (what the upscale worker runs)
    const rawOptions = { tileSize: 4096, backProjection: 0 };
    const raw = await timed(low, viaModel(upscaler, rawOptions));
    const rawSpeed = await timed(sameSize, viaModel(upscaler, rawOptions));
    const untiled = await timed(low, viaModel(upscaler, { tileSize: 4096 }));
    const untiledSpeed = await timed(sameSize, viaModel(upscaler, { tileSize: 4096 }));
    const tiled = await timed(low, viaModel(upscaler, pass.tiles));
    const tiledSpeed = await timed(sameSize, viaModel(upscaler, pass.tiles));
    methods.push([`esrgan-${variant} raw`, raw], [`esrgan-${variant}`, untiled, tiled]);
    for (const [method, how, t] of [
      [`esrgan-${variant} raw`, "untiled", rawSpeed],
      [`esrgan-${variant}`, "untiled", untiledSpeed],
      [`esrgan-${variant}`, `tiled ${pass.tiles.tileSize}/${pass.tiles.overlap}`, tiledSpeed],
    ] as const) {
      speedRows.push(
        `| ${pass.name} | ${method} | ${how} | ${fixed(t.cpuMs, 0)} | ${fixed(t.wallMs, 0)} | ${fixed(t.cpuMs / bicubicSpeed.cpuMs, 0)}× |`,
      );
    }
  }
  pass.references.forEach(({ name, image }, i) => {
    const cells = methods.map(([method, untiled, tiled]) => {
      const main = score(method, pass.name, image, untiled.outputs[i]);
      return tiled ? `${main} (tiled ${fixed(psnr(image, tiled.outputs[i], SCALE), 2)})` : main;
    });
    qualityRows.push(`| ${pass.name} | ${name} | ${low[i].width}→${image.width} | ${cells.join(" | ")} |`);
  });
}

const methodNames = ["bicubic", ...[...upscalers.keys()].flatMap((v) => [`esrgan-${v} raw`, `esrgan-${v}`])];
const avg = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;
// Two aggregates: the mean of per-image PSNRs (the usual SR table number, dominated by images every method
// reconstructs almost perfectly, such as smooth gradients at 45-55 dB), and the PSNR of the mean squared error, where
// each image's error counts equally.
const psnrOfMeanMse = (psnrs: number[]) => 10 * Math.log10((255 * 255) / avg(psnrs.map((p) => (255 * 255) / 10 ** (p / 10))));
const averageRow = (label: string, suffix: string) =>
  `| ${label} | **average** | | ${methodNames
    .map((m) => {
      const e = averages.get(`${m}${suffix}`)!;
      return `**${fixed(avg(e.psnr), 2)} / ${avg(e.ssim).toFixed(4)}**`;
    })
    .join(" | ")} |`;

console.log(
  `\nESRGAN (converted to ONNX, onnxruntime-node CPU) vs bicubic, x${SCALE}; ${os.cpus().length} CPUs (${os.cpus()[0]?.model.trim()}), node ${process.version}\n`,
);
console.log("Quality: PSNR (dB) / SSIM on luma, border of 4 px cropped; higher is better. (tiled …) = PSNR of the tiled run.\n");
console.log(`| pass | image | size | ${methodNames.join(" | ")} |`);
console.log(`|---|---|---|${methodNames.map(() => "---").join("|")}|`);
for (const row of qualityRows) console.log(row);
for (const pass of passes) console.log(averageRow(pass.name, ` ${pass.name}`));
console.log(averageRow("all", ""));
for (const [label, suffix] of [...passes.map((p) => [p.name, ` ${p.name}`]), ["all", ""]]) {
  console.log(
    `| ${label} | **PSNR of the mean MSE** | | ${methodNames.map((m) => `**${fixed(psnrOfMeanMse(averages.get(`${m}${suffix}`)!.psnr), 2)}**`).join(" | ")} |`,
  );
}
console.log("\nSpeed per image (batch of 1, the 4 generated images of each pass; CPU = process user+system time over all threads):\n");
console.log("| pass | method | tiling (tile/overlap px) | CPU ms | wall ms | CPU vs bicubic |");
console.log("|---|---|---|---|---|---|");
for (const row of speedRows) console.log(row);
const best = methodNames.slice(1).map((m) => [m, avg(averages.get(m)!.psnr) - avg(averages.get("bicubic")!.psnr)] as const);
console.log(`\nAverage PSNR gain over bicubic: ${best.map(([m, d]) => `${m} ${d >= 0 ? "+" : ""}${d.toFixed(2)} dB`).join(", ")}`);
const pooled = methodNames
  .slice(1)
  .map((m) => [m, psnrOfMeanMse(averages.get(m)!.psnr) - psnrOfMeanMse(averages.get("bicubic")!.psnr)] as const);
console.log(
  `Gain in PSNR of the mean MSE over bicubic: ${pooled.map(([m, d]) => `${m} ${d >= 0 ? "+" : ""}${d.toFixed(2)} dB`).join(", ")}`,
);
for (const upscaler of upscalers.values()) await upscaler.close();
