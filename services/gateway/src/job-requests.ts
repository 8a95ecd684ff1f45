import { FarmError } from "@unclip/core";
import {
  JobKind,
  Stage,
  type BatchItem,
  type CreateVariationsRequest,
  type EditImageRequest,
  type GenerateRequest,
  type InterpolateImagesRequest,
  type TransformImageRequest,
} from "@unclip/protocol";
import { DEFAULT_TRANSFORM_INVERSION, DEFAULT_TRANSFORM_STRENGTH } from "@unclip/unclip/manipulations";
import type { Admission } from "./job-admission.js";
import { readTheSame } from "./prompt-tokens.js";
import {
  upscaleRoute,
  validateCommon,
  validateFrames,
  validateImage,
  validateManipulationSampling,
  validateOptionalPrompt,
  validatePrompt,
  validateStrength,
} from "./request-validation.js";

/** Checks a generate request and turns it into an admission (what the streaming RPC and batch items share). */
export async function prepareGenerate(req: GenerateRequest, urlTtlMaxS?: number): Promise<Admission> {
  const prompt = validatePrompt(req.prompt);
  const params = validateCommon(req, urlTtlMaxS);
  return { kind: JobKind.GENERATE, prompt, params, route: [Stage.PRIOR, Stage.DECODER, ...upscaleRoute(params.size)] };
}

export async function prepareVariations(req: CreateVariationsRequest, urlTtlMaxS?: number): Promise<Admission> {
  const params = validateCommon(req, urlTtlMaxS);
  await validateImage(req.image, "image");
  return {
    kind: JobKind.VARIATIONS,
    prompt: "",
    params,
    route: [Stage.IMAGE_ENCODE, Stage.DECODER, ...upscaleRoute(params.size)],
    source: req.image,
  };
}

export async function prepareEdit(req: EditImageRequest, urlTtlMaxS?: number): Promise<Admission> {
  const prompt = validatePrompt(req.prompt);
  const params = validateCommon(req, urlTtlMaxS);
  const image = await validateImage(req.image, "image");
  const mask = await validateImage(req.mask, "mask");
  if (Math.abs(image.width / image.height - mask.width / mask.height) > 0.01) {
    throw FarmError.invalid(
      `mask is ${mask.width}x${mask.height} but image is ${image.width}x${image.height}: they need the same aspect ratio`,
    );
  }
  return {
    kind: JobKind.EDIT,
    prompt,
    params,
    route: [Stage.PRIOR, Stage.DECODER, ...upscaleRoute(params.size)],
    source: req.image,
    mask: req.mask,
  };
}

/** Frames of an interpolation are the job's images, all from one seed (InterpolateImagesRequest.seed). */
export async function prepareInterpolate(req: InterpolateImagesRequest, urlTtlMaxS?: number): Promise<Admission> {
  validateManipulationSampling(req.sampling, "interpolations");
  const params = { ...validateCommon({ ...req, numImages: 1 }, urlTtlMaxS), numImages: validateFrames(req.frames) };
  await validateImage(req.imageA, "image_a");
  await validateImage(req.imageB, "image_b");
  return {
    kind: JobKind.INTERPOLATE,
    prompt: "",
    params,
    route: [Stage.INTERPOLATE_EMBED, Stage.DECODER, ...upscaleRoute(params.size)],
    source: req.imageA,
    manipulation: { sourceB: req.imageB, invertSources: req.invertSources },
  };
}

export async function prepareTransform(req: TransformImageRequest, urlTtlMaxS?: number): Promise<Admission> {
  validateManipulationSampling(req.sampling, "transforms");
  const to = validatePrompt(req.toCaption, "to_caption");
  const from = validateOptionalPrompt(req.fromCaption, "from_caption");
  if (readTheSame(to, from)) {
    throw FarmError.invalid(
      `to_caption ${JSON.stringify(to)} and from_caption ${JSON.stringify(from)} read the same to the model, so there is no change to make: ` +
        `name what the image should become and what it is now, e.g. "a blue" from "a red"`,
    );
  }
  const strength = validateStrength(req.strength, DEFAULT_TRANSFORM_STRENGTH);
  const invertSources = req.invertSource ?? DEFAULT_TRANSFORM_INVERSION;
  const params = validateCommon(req, urlTtlMaxS);
  if (invertSources && params.numImages > 1) {
    throw FarmError.invalid(
      `num_images is ${params.numImages}, but with invert_source every image starts from the same inverted latent and comes out the same: ask for 1`,
    );
  }
  await validateImage(req.image, "image");
  return {
    kind: JobKind.TRANSFORM,
    prompt: to,
    params,
    route: [Stage.TEXT_DIFF, Stage.DECODER, ...upscaleRoute(params.size)],
    source: req.image,
    manipulation: { invertSources, fromPrompt: from, strength },
  };
}

/** A batch item's request, checked like the same request sent on its own. */
export function prepareItem(item: BatchItem): Promise<Admission> {
  const r = item.request;
  switch (r.case) {
    case "generate":
      return prepareGenerate(r.value);
    case "variations":
      return prepareVariations(r.value);
    case "edit":
      return prepareEdit(r.value);
    default:
      return Promise.reject(FarmError.invalid("the item has no request: set one of generate, variations or edit"));
  }
}
