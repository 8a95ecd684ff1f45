// Measured quality of the shapes-v1 bundle through the worker code path (TextToEmbedding / ImageToEmbedding /
// EmbeddingToImage from @unclip/unclip on onnxruntime-node), scored by the procedural checker (shapes-checker.ts).
// The prompts, variation sources, edit cases and retrieval pairs come from one of the two evaluation sets that
// models/train/export.py writes from the world generator (deterministic):
//   --set test (default): models/train/test_set.json, new seeds and caption templates no training caption uses
//                         (models/train/test_captions.py); the model card's headline. Score on it once per release.
//   --set dev:            models/train/eval_set.json, the items every choice up to 1.5.0 was made on; make choices here.
//   --set PATH:           any file of the same format.
// usage: npm run shapes-eval -w @unclip/bench [-- --set dev|test|PATH --bundle ../models/shapes-v1
//        --decoder-guidance G (or --guidance G) --prior-guidance G --steps N --sampler ddpm|ddim --limit N
//        --skip prompts,variations,edits,retrieval,time --grid out.png]
import { readFile } from "node:fs/promises";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import sharp from "sharp";
import { Tensor } from "onnxruntime-node";
import { EmbeddingToImage, ImageToEmbedding, loadBundle, TextToEmbedding, type RgbImage, type SamplerName } from "@unclip/unclip";
import { ShapesChecker, type World } from "./shapes-checker.js";

const here = path.dirname(fileURLToPath(import.meta.url));
const { values } = parseArgs({
  options: {
    bundle: { type: "string", default: path.join(here, "..", "models", "shapes-v1") },
    set: { type: "string", default: "test" },
    guidance: { type: "string" },
    "decoder-guidance": { type: "string" },
    "prior-guidance": { type: "string" },
    steps: { type: "string" },
    sampler: { type: "string" },
    limit: { type: "string" },
    grid: { type: "string" },
    skip: { type: "string", default: "" },
  },
});
const num = (v: string | undefined) => (v === undefined ? undefined : Number(v));
const sets: Record<string, string> = { dev: "eval_set.json", test: "test_set.json" };
const named = Object.hasOwn(sets, values.set);
const setName = named ? values.set : path.basename(values.set);
const setPath = named ? path.join(here, "..", "models", "train", sets[values.set]) : values.set;
if (values.guidance !== undefined && values["decoder-guidance"] !== undefined && values.guidance !== values["decoder-guidance"]) {
  throw new Error(`--guidance ${values.guidance} and --decoder-guidance ${values["decoder-guidance"]} disagree (they are the same option)`);
}
const decoderGuidance = num(values["decoder-guidance"] ?? values.guidance);
const decoderOptions = { guidance: decoderGuidance, steps: num(values.steps), sampler: values.sampler as SamplerName | undefined };
const priorOptions = { guidance: num(values["prior-guidance"]) };
const limit = num(values.limit) ?? Infinity;
const skip = new Set(values.skip.split(","));

interface Prompt {
  split: string;
  prompt: string;
  seed: number;
  shape: string;
  colour: string;
  bg: string;
  size: string;
  position: string;
}
interface EvalSet extends World {
  prompts: Prompt[];
  variations: (Omit<Prompt, "prompt"> & { png: string })[];
  edits: { png: string; prompt: string; colour: string; bg: string; box: [number, number, number, number]; seed: number }[];
  retrieval: { png: string; prompt: string }[];
}

const set = JSON.parse(await readFile(setPath, "utf8")) as EvalSet;
const checker = new ShapesChecker(set);
const bundle = await loadBundle(values.bundle, { sections: ["tokenizer", "clip", "prior", "decoder"] });
const textToEmbedding = new TextToEmbedding(bundle);
const imageToEmbedding = new ImageToEmbedding(bundle);
const embeddingToImage = new EmbeddingToImage(bundle);
const { decoder, prior } = bundle.manifest;
const header =
  `set ${setName} (${path.relative(process.cwd(), setPath)}); bundle ${bundle.manifest.name} ${bundle.manifest.version}: ` +
  `prior ${priorOptions.guidance ?? prior!.defaultGuidance} guidance ${prior!.defaultSteps} steps; ` +
  `decoder ${decoderOptions.sampler ?? decoder!.defaultSampler} ${decoderOptions.steps ?? decoder!.defaultSteps} steps guidance ${decoderOptions.guidance ?? decoder!.defaultGuidance}`;
console.error(header);

async function png(b64: string): Promise<RgbImage> {
  const { data, info } = await sharp(Buffer.from(b64, "base64")).removeAlpha().raw().toBuffer({ resolveWithObject: true });
  return { width: info.width, height: info.height, data: new Uint8Array(data.buffer, data.byteOffset, data.length) };
}

const pct = (k: number, n: number) => (n ? `${((100 * k) / n).toFixed(1)}% (${k}/${n})` : "–");
const rows: string[] = [];
const grid: RgbImage[] = [];
const BATCH = 8;

// shape misses as "asked→read (size)" with counts, printed under each row (stderr): which confusions remain
class Misses {
  private readonly counts = new Map<string, number>();
  add(asked: string, read: string | null, size: string) {
    const key = `${asked}→${read ?? "none"} (${size})`;
    this.counts.set(key, (this.counts.get(key) ?? 0) + 1);
  }
  toString() {
    const sorted = [...this.counts].sort((a, b) => b[1] - a[1]);
    return `  shape misses: ${sorted.map(([k, n]) => `${k} ×${n}`).join(", ") || "none"}`;
  }
}

// 1. text -> image
if (!skip.has("prompts")) {
  for (const split of ["seen", "held-out"]) {
    const prompts = set.prompts.filter((p) => p.split === split).slice(0, limit);
    let bg = 0;
    let colour = 0;
    let shape = 0;
    let position = 0;
    let all = 0;
    const misses = new Misses();
    for (let i = 0; i < prompts.length; i += BATCH) {
      const chunk = prompts.slice(i, i + BATCH);
      const embeds = await textToEmbedding.run(
        chunk.map((p) => ({ prompt: p.prompt, seed: BigInt(p.seed) })),
        priorOptions,
      );
      const images = await embeddingToImage.run(
        embeds.map((embedding, b) => ({ embedding, seed: BigInt(chunk[b].seed) + 1n })),
        decoderOptions,
      );
      images.forEach((img, b) => {
        const p = chunk[b];
        const v = checker.check(img);
        const ok = [v.bg === p.bg, v.colour === p.colour, v.shape === p.shape, v.position === p.position];
        bg += +ok[0];
        colour += +ok[1];
        shape += +ok[2];
        if (!ok[2]) misses.add(p.shape, v.shape, p.size);
        position += +ok[3];
        all += +ok.every(Boolean);
        if (grid.length < 48) grid.push(img);
      });
    }
    const n = prompts.length;
    rows.push(`| text → image, ${split} | ${n} | ${pct(bg, n)} | ${pct(colour, n)} | ${pct(shape, n)} | ${pct(position, n)} | ${pct(all, n)} |`);
    console.error(rows.at(-1));
    console.error(misses.toString());
  }
}

// 2. variations: image -> CLIP image embedding -> decoder; keeps object colour and shape (and, for diagnosis, the
// position anchor the checker finds in the source)?
const variationRows: string[] = [];
if (!skip.has("variations")) {
  for (const split of ["seen", "held-out"]) {
    const items = set.variations.filter((v) => v.split === split).slice(0, limit);
    let kept = 0;
    let colour = 0;
    let shape = 0;
    let position = 0;
    let sourceOk = 0;
    const misses = new Misses();
    for (let i = 0; i < items.length; i += BATCH) {
      const chunk = items.slice(i, i + BATCH);
      const sources = await Promise.all(chunk.map((v) => png(v.png)));
      const embeds = await imageToEmbedding.run(sources);
      const images = await embeddingToImage.run(
        embeds.map((embedding, b) => ({ embedding, seed: BigInt(chunk[b].seed) })),
        decoderOptions,
      );
      images.forEach((img, b) => {
        const src = checker.check(sources[b]);
        sourceOk += +(src.colour === chunk[b].colour && src.shape === chunk[b].shape);
        const v = checker.check(img);
        colour += +(v.colour === chunk[b].colour);
        shape += +(v.shape === chunk[b].shape);
        if (v.shape !== chunk[b].shape) misses.add(chunk[b].shape, v.shape, chunk[b].size);
        position += +(v.position !== null && v.position === src.position);
        kept += +(v.colour === chunk[b].colour && v.shape === chunk[b].shape);
      });
    }
    variationRows.push(
      `| variations, ${split} | ${items.length} | ${pct(colour, items.length)} | ${pct(shape, items.length)} | ${pct(kept, items.length)} | ${pct(position, items.length)} | checker on sources: ${pct(sourceOk, items.length)} |`,
    );
    console.error(variationRows.at(-1));
    console.error(misses.toString());
  }
}

// 3. edits: repaint a box around the object with a prompt that asks for another object colour
let editRow = "";
if (!skip.has("edits")) {
  const edits = set.edits.slice(0, limit);
  let unchanged = 0;
  let asked = 0;
  for (let i = 0; i < edits.length; i += BATCH) {
    const chunk = edits.slice(i, i + BATCH);
    const sources = await Promise.all(chunk.map((e) => png(e.png)));
    const embeds = await textToEmbedding.run(
      chunk.map((e) => ({ prompt: e.prompt, seed: BigInt(e.seed) })),
      priorOptions,
    );
    const keeps = chunk.map((e) => {
      const keep = new Uint8Array(64 * 64).fill(1);
      const [x0, y0, x1, y1] = e.box;
      for (let y = y0; y < y1; y++) for (let x = x0; x < x1; x++) keep[y * 64 + x] = 0;
      return keep;
    });
    const images = await embeddingToImage.run(
      embeds.map((embedding, b) => ({ embedding, seed: BigInt(chunk[b].seed) + 7n, inpaint: { image: sources[b], keep: keeps[b] } })),
      decoderOptions,
    );
    images.forEach((img, b) => {
      const keep = keeps[b];
      let same = true;
      for (let p = 0; p < keep.length && same; p++)
        if (keep[p]) for (let c = 0; c < 3; c++) if (img.data[3 * p + c] !== sources[b].data[3 * p + c]) same = false;
      unchanged += +same;
      const mask = checker.objectMask(img, chunk[b].bg, (p) => !keep[p]);
      const pixels: number[] = [];
      mask.forEach((v, p) => v && pixels.push(p));
      asked += +(pixels.length >= 12 && checker.majority(img.data, pixels) === chunk[b].colour);
      if (grid.length < 64) grid.push(img);
    });
  }
  editRow = `| edits (repaint a box around the object, new colour asked) | ${edits.length} | unmasked pixels unchanged ${pct(unchanged, edits.length)} | asked colour in the masked region ${pct(asked, edits.length)} |`;
  console.error(editRow);
}

// 4. CLIP retrieval, text -> image top-1 over one batch of 100 (cosine similarity of text_embeds and image_embeds)
let retrievalRow = "";
if (!skip.has("retrieval")) {
  const pairs = set.retrieval.slice(0, 100);
  const images = await Promise.all(pairs.map((r) => png(r.png)));
  const imageEmbeds = await imageToEmbedding.run(images);
  const tokens = bundle.tokenizer!.encode(pairs.map((r) => r.prompt));
  const out = await bundle.sessions.textEncoder!.run({ input_ids: new Tensor("int64", tokens.inputIds, [pairs.length, tokens.length]) });
  const text = out.text_embeds.data as Float32Array;
  const D = bundle.manifest.clip!.embedDim;
  const norm = (a: Float32Array) => Math.sqrt(a.reduce((s, v) => s + v * v, 0));
  let top1 = 0;
  let attributeTop1 = 0;
  for (let i = 0; i < pairs.length; i++) {
    const t = text.subarray(i * D, (i + 1) * D);
    let best = -1;
    let bestS = -Infinity;
    imageEmbeds.forEach((e, j) => {
      let s = 0;
      for (let k = 0; k < D; k++) s += t[k] * e[k];
      s /= norm(e) * norm(t);
      if (s > bestS) [best, bestS] = [j, s];
    });
    top1 += +(best === i);
    attributeTop1 += +(pairs[best].prompt === pairs[i].prompt || best === i);
  }
  retrievalRow = `| CLIP retrieval, text → image top-1 over ${pairs.length} (captions name every attribute) | ${pct(top1, pairs.length)} |`;
  console.error(retrievalRow);
}

// 5. CPU time of one 64 px image (prior + decoder at the defaults, batch of 1, after a warm-up)
let timeRow = "";
if (!skip.has("time")) {
  const one = async (k: number) => {
    const [embedding] = await textToEmbedding.run([{ prompt: set.prompts[k].prompt, seed: BigInt(k) }], priorOptions);
    await embeddingToImage.run([{ embedding, seed: BigInt(k) }], decoderOptions);
  };
  await one(0);
  const runs = 5;
  const cpu = process.cpuUsage();
  const wall = performance.now();
  for (let k = 1; k <= runs; k++) await one(k);
  const used = process.cpuUsage(cpu);
  timeRow = `| CPU time per 64 px image (prior + decoder, batch 1, default steps) | ${((used.user + used.system) / 1000 / runs).toFixed(0)} ms CPU, ${((performance.now() - wall) / runs).toFixed(0)} ms wall |`;
  console.error(timeRow);
}

console.log(`${header}\n`);
console.log("| prompts | n | background colour | object colour | shape | position | all four |");
console.log("|---|---|---|---|---|---|---|");
rows.forEach((r) => console.log(r));
console.log("\n| variations | n | object colour kept | shape kept | colour and shape kept | position kept | |");
console.log("|---|---|---|---|---|---|---|");
variationRows.forEach((r) => console.log(r));
console.log("\n| edits | n | | |\n|---|---|---|---|");
console.log(editRow);
console.log("\n| other | |\n|---|---|");
console.log(retrievalRow);
console.log(timeRow);

if (values.grid && grid.length) {
  const cols = 8;
  const rowsN = Math.ceil(grid.length / cols);
  const data = new Uint8Array(cols * 64 * rowsN * 64 * 3);
  grid.forEach((img, i) => {
    const ox = (i % cols) * 64;
    const oy = Math.floor(i / cols) * 64;
    for (let y = 0; y < 64; y++) data.set(img.data.subarray(y * 64 * 3, (y + 1) * 64 * 3), ((oy + y) * cols * 64 + ox) * 3);
  });
  await sharp(data, { raw: { width: cols * 64, height: rowsN * 64, channels: 3 } }).png().toFile(values.grid);
}
await bundle.release();
