// The upsampler benchmark's reference scenes (bench/upsampler-eval/, written by models/train/upsampler_eval_set.py).
import { readFile } from "node:fs/promises";
import path from "node:path";
import type { RgbImage } from "@unclip/upscaler";
import { rgb } from "./upscale-images.js";

export interface EvalScene {
  name: string;
  seed: number;
  shape: string;
  colour: string;
  bg: string;
  size: string;
  position: string | null;
  /** Object centre and radius in 64 px units (pixel x covers [x, x + 1)). */
  cx: number;
  cy: number;
  r: number;
  /** The world's hard-edged 64 px render: the upscalers' input. */
  low: RgbImage;
  /** The analytic anti-aliased renders at 256 and 1024 px: the references. */
  reference256: RgbImage;
  reference1024: RgbImage;
}

interface SceneFile {
  scenes: (Omit<EvalScene, "low" | "reference256" | "reference1024"> & { files: Record<"64" | "256" | "1024", string> })[];
}

export async function loadEvalScenes(dir: string): Promise<EvalScene[]> {
  const { scenes } = JSON.parse(await readFile(path.join(dir, "scene.json"), "utf8")) as SceneFile;
  return Promise.all(
    scenes.map(async ({ files, ...scene }) => ({
      ...scene,
      low: await rgb(path.join(dir, files["64"])),
      reference256: await rgb(path.join(dir, files["256"])),
      reference1024: await rgb(path.join(dir, files["1024"])),
    })),
  );
}
