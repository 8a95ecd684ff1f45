// The decoder's own 64 px circles, squares and triangles for the upsampler benchmark: text → embedding → image with
// models/shapes-v1 in-process (as shapes-eval.ts runs it, manifest defaults), kept when the shapes checker reads the
// asked shape.
import { readFile } from "node:fs/promises";
import { EmbeddingToImage, loadBundle, type RgbImage, TextToEmbedding } from "@unclip/unclip";
import { ShapesChecker, type World } from "./shapes-checker.js";

export interface DecodedShape {
  name: string;
  prompt: string;
  shape: string;
  image: RgbImage;
}

export interface DecodedShapes {
  kept: DecodedShape[];
  /** Per shape, how many were asked for and how many the checker read as that shape. */
  counts: Record<string, { asked: number; kept: number }>;
}

const COUNTS = { circle: 24, square: 12, triangle: 12 };
// (object, background) pairs in turn, none of them held out of training (models/train/config.json world.heldOut)
const PAIRS = [
  ["red", "white"],
  ["yellow", "blue"],
  ["blue", "yellow"],
  ["green", "black"],
  ["white", "black"],
  ["black", "orange"],
  ["orange", "yellow"],
  ["purple", "white"],
  ["red", "green"],
  ["yellow", "white"],
  ["blue", "purple"],
  ["orange", "red"],
];
const HELD_OUT = new Set(["circle purple", "square orange", "triangle white"]);
// Large objects are centred: at a corner anchor the world lets up to 3 px of a large one leave the image.
const SMALL_AT = ["top left", "top right", "bottom left", "bottom right", "centre"];
const SEED = 4_242_000;
const BATCH = 8;

function prompts() {
  const out: { prompt: string; shape: string; seed: number }[] = [];
  for (const [shape, n] of Object.entries(COUNTS)) {
    const pairs = PAIRS.filter(([colour]) => !HELD_OUT.has(`${shape} ${colour}`));
    for (let i = 0; i < n; i++) {
      const [colour, bg] = pairs[i % pairs.length];
      const where = i % 2 ? "centre" : SMALL_AT[(i / 2) % SMALL_AT.length];
      const prompt = `a ${i % 2 ? "large" : "small"} ${colour} ${shape} in the ${where} on a ${bg} background`;
      out.push({ prompt, shape, seed: SEED + out.length });
    }
  }
  return out;
}

export async function decodeShapes(bundleDir: string, evalSetFile: string): Promise<DecodedShapes> {
  const checker = new ShapesChecker(JSON.parse(await readFile(evalSetFile, "utf8")) as World);
  const bundle = await loadBundle(bundleDir, { sections: ["tokenizer", "clip", "prior", "decoder"] });
  try {
    const textToEmbedding = new TextToEmbedding(bundle);
    const embeddingToImage = new EmbeddingToImage(bundle);
    const all = prompts();
    const kept: DecodedShape[] = [];
    const counts = Object.fromEntries(Object.keys(COUNTS).map((s) => [s, { asked: 0, kept: 0 }]));
    for (let i = 0; i < all.length; i += BATCH) {
      const chunk = all.slice(i, i + BATCH);
      const embeddings = await textToEmbedding.run(chunk.map((p) => ({ prompt: p.prompt, seed: BigInt(p.seed) })));
      const images = await embeddingToImage.run(embeddings.map((embedding, b) => ({ embedding, seed: BigInt(chunk[b].seed) + 1n })));
      images.forEach((image, b) => {
        const { prompt, shape, seed } = chunk[b];
        counts[shape].asked++;
        if (checker.check(image).shape !== shape) return;
        counts[shape].kept++;
        kept.push({ name: `decoded-${seed}-${shape}`, prompt, shape, image });
      });
    }
    return { kept, counts };
  } finally {
    await bundle.release();
  }
}
