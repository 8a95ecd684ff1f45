import {
  create,
  CreateVariationsRequestSchema,
  EditImageRequestSchema,
  GenerateRequestSchema,
  SamplingOptionsSchema,
  type CreateVariationsRequest,
  type EditImageRequest,
  type GenerateRequest,
} from "@unclip/protocol";
import sharp from "sharp";

export type JobKindName = "generate" | "variations" | "edit";
export const JOB_KINDS: readonly JobKindName[] = ["generate", "variations", "edit"];
export const SIZES = [64, 256, 1024] as const;

/** One job of the suite; the same spec (same seed) runs in the fault-free and the chaos phase. */
export interface JobSpec {
  readonly index: number;
  readonly kind: JobKindName;
  readonly size: (typeof SIZES)[number];
  readonly numImages: number;
  readonly seed: bigint;
  readonly prompt: string;
}

const PROMPTS = ["a red square", "a blue circle on white", "a yellow star", "a green triangle bottom right", "two black dots"];

/** mulberry32: a small seeded generator, so a suite seed always gives the same mix (and the same faults). */
export function seededRandom(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/**
 * `count` jobs of every kind and size: generate, variations and edit in turn, sizes 64/256/1024 drawn 45/35/20
 * (a 1024 px image costs the upscale pool most), one or two images each.
 */
export function jobSpecs(count: number, suiteSeed = 1): JobSpec[] {
  const random = seededRandom(suiteSeed);
  return Array.from({ length: count }, (_, index) => {
    const r = random();
    return {
      index,
      kind: JOB_KINDS[index % JOB_KINDS.length]!,
      size: r < 0.45 ? 64 : r < 0.8 ? 256 : 1024,
      numImages: random() < 0.3 ? 2 : 1,
      seed: BigInt(1000 + suiteSeed * 100_000 + index * 7),
      prompt: PROMPTS[index % PROMPTS.length]!,
    };
  });
}

/** The uploaded images of variations and edits: a 64 px scene and a mask that repaints its right half. */
export interface JobInputs {
  readonly image: Uint8Array;
  readonly mask: Uint8Array;
}

export async function jobInputs(): Promise<JobInputs> {
  const scene = `<svg xmlns="http://www.w3.org/2000/svg" width="64" height="64"><rect width="64" height="64" fill="#1030c0"/><rect x="8" y="8" width="20" height="20" fill="#d02020"/></svg>`;
  const mask = `<svg xmlns="http://www.w3.org/2000/svg" width="64" height="64"><rect width="64" height="64" fill="#000"/><rect x="32" y="0" width="32" height="64" fill="#fff"/></svg>`;
  return {
    image: await sharp(Buffer.from(scene)).png().toBuffer(),
    mask: await sharp(Buffer.from(mask)).png().removeAlpha().toBuffer(),
  };
}

export type JobRequest =
  | { kind: "generate"; request: GenerateRequest }
  | { kind: "variations"; request: CreateVariationsRequest }
  | { kind: "edit"; request: EditImageRequest };

/** Few diffusion steps: the tiny bundle's images depend on the seed all the same. */
const sampling = () => create(SamplingOptionsSchema, { priorSteps: 6, decoderSteps: 6 });

export function jobRequest(spec: JobSpec, inputs: JobInputs, requestId: string): JobRequest {
  const common = { numImages: spec.numImages, size: spec.size, seed: spec.seed, sampling: sampling(), requestId };
  switch (spec.kind) {
    case "generate":
      return { kind: "generate", request: create(GenerateRequestSchema, { prompt: spec.prompt, ...common }) };
    case "variations":
      return { kind: "variations", request: create(CreateVariationsRequestSchema, { image: inputs.image, ...common }) };
    case "edit":
      return {
        kind: "edit",
        request: create(EditImageRequestSchema, { image: inputs.image, mask: inputs.mask, prompt: spec.prompt, ...common }),
      };
  }
}
