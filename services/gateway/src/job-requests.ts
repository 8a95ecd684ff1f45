import { FarmError } from "@unclip/core";
import {
  JobKind,
  Stage,
  type BatchItem,
  type CreateVariationsRequest,
  type EditImageRequest,
  type GenerateRequest,
} from "@unclip/protocol";
import type { Admission } from "./job-admission.js";
import { upscaleRoute, validateCommon, validateImage, validatePrompt } from "./request-validation.js";

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
