import { FarmError, type StageHandler, type StageOutput, type TaskContext, type ObjectStore } from "@unclip/core";
import { decodeFloat32, JobKind, Stage, type StageTask } from "@unclip/protocol";
import {
  EmbeddingToImage,
  interpolationFraction,
  MANIPULATION_DECODER_GUIDANCE,
  slerp,
  type Bundle,
  type EmbeddingItem,
  type InversionItem,
} from "@unclip/unclip";
import { decodeImage, decodeMask, encodePng, ImageInputError, resizeImage } from "@unclip/unclip/image";
import { InvertedLatents } from "./inverted-latents.js";

/** Interpolations and transforms decode with DDIM (η = 0), without classifier-free guidance unless the job asks. */
const isManipulation = (task: StageTask) => task.params!.kind === JobKind.INTERPOLATE || task.params!.kind === JobKind.TRANSFORM;

/**
 * decoder-worker: CLIP image embedding → 64 px image, plain or inpainting (edits); for the image manipulations also
 * from a DDIM-inverted source latent (docs/architecture.md §11, "Image manipulations").
 */
export function decoderHandler(bundle: Bundle, store: ObjectStore): StageHandler & { close(): Promise<void> } {
  const decoder = bundle.manifest.decoder!;
  const embeddingToImage = new EmbeddingToImage(bundle);
  const inverted = new InvertedLatents();
  const settings = (task: StageTask) => {
    const manipulation = isManipulation(task);
    return {
      steps: task.params!.decoderSteps || decoder.defaultSteps,
      guidance: task.params!.decoderGuidance || (manipulation ? MANIPULATION_DECODER_GUIDANCE : decoder.defaultGuidance),
      sampler: (manipulation ? "ddim" : task.params!.sampler || decoder.defaultSampler) as "ddpm" | "ddim",
    };
  };

  return {
    pool: "decoder",
    bundle: bundle.id,
    executionProvider: bundle.executionProvider,
    defaultSteps: { [Stage.DECODER]: decoder.defaultSteps },
    batchKey: (task) => JSON.stringify(settings(task)),
    run: (batch, signal) => decode(batch, signal),
    close: () => bundle.release(),
  };

  async function decode(batch: readonly TaskContext[], signal: AbortSignal): Promise<(StageOutput | Error)[]> {
    const results: (StageOutput | Error)[] = batch.map(() => new Error("not run"));
    const items: EmbeddingItem[] = [];
    const ok: number[] = [];
    /** Per item of `items`: the source keys its latent is made from, when it starts from inverted sources. */
    const sourcesOf: (string[] | undefined)[] = [];
    const options = settings(batch[0]!.task);
    const cacheKey = (sourceKey: string) => `${sourceKey}|${options.steps}`;
    const latents = new Map<string, Float32Array>();
    const toInvert = new Map<string, InversionItem>();
    for (let i = 0; i < batch.length; i++) {
      const { task } = batch[i]!;
      try {
        if (!task.imageEmbedding) throw FarmError.invalid("the decoder task carries no image embedding");
        const embedding = decodeFloat32(task.imageEmbedding).data;
        if (embedding.length !== decoder.embedDim) {
          throw FarmError.invalid(`the image embedding has ${embedding.length} values; bundle ${bundle.id} expects ${decoder.embedDim}`);
        }
        const sources = task.params!.invertSources ? sourceKeys(task) : undefined;
        if (sources) {
          const embeddings = sourceEmbeddings(task, sources.length);
          for (const [s, key] of sources.entries()) {
            const kept = inverted.get(cacheKey(key));
            if (kept) latents.set(key, kept);
            else if (!toInvert.has(key)) toInvert.set(key, { image: await sourceImage(key), embedding: embeddings[s]! });
          }
        }
        items.push({ embedding, seed: task.seed, inpaint: task.params!.maskKey ? await inpaintInputs(task) : undefined });
        sourcesOf.push(sources);
        ok.push(i);
      } catch (err) {
        results[i] = err instanceof ImageInputError ? FarmError.invalid(err.message) : (err as Error);
      }
    }
    if (ok.length === 0) return results;

    // Tasks whose sources are inverted in this batch count the inversion's steps before the decoding's.
    const inverting = new Set(ok.filter((_, k) => sourcesOf[k]?.some((key) => toInvert.has(key))));
    const offset = (i: number) => (inverting.has(i) ? options.steps : 0);
    if (toInvert.size > 0) {
      const done = await embeddingToImage.invert([...toInvert.values()], {
        steps: options.steps,
        signal,
        onStep: (step, total) => inverting.forEach((i) => batch[i]!.progress(step, 2 * total)),
      });
      [...toInvert.keys()].forEach((key, k) => {
        latents.set(key, done[k]!);
        inverted.set(cacheKey(key), done[k]!);
      });
    }
    items.forEach((item, k) => {
      const [a, b] = (sourcesOf[k] ?? []).map((key) => latents.get(key)!);
      if (!a) return;
      const { task } = batch[ok[k]!]!;
      item.latent = b ? slerp(a, b, interpolationFraction(task.index, task.params!.numImages)) : a;
    });

    const images = await embeddingToImage.run(items, {
      ...options,
      signal,
      onStep: (step, total) => ok.forEach((i) => batch[i]!.progress(offset(i) + step, offset(i) + total)),
    });
    for (let k = 0; k < ok.length; k++) results[ok[k]!] = { png: await encodePng(images[k]!) };
    return results;
  }

  async function inpaintInputs(task: StageTask) {
    const image = await sourceImage(task.params!.sourceKey);
    const keep = await decodeMask(await store.get(task.params!.maskKey), decoder.size);
    return { image, keep };
  }

  /** The sources a manipulation inverts: the interpolation's two (image_a, image_b) or the transform's one. */
  function sourceKeys(task: StageTask): string[] {
    const { kind, sourceKey, sourceBKey } = task.params!;
    return kind === JobKind.INTERPOLATE ? [sourceKey, sourceBKey] : [sourceKey];
  }

  /** The sources' CLIP image embeddings the prior pool passed on, one per source: what each is inverted under. */
  function sourceEmbeddings(task: StageTask, count: number): Float32Array[] {
    const D = decoder.embedDim;
    const tensor = task.sourceEmbeddings ? decodeFloat32(task.sourceEmbeddings) : undefined;
    if (!tensor || tensor.shape.length !== 2 || tensor.shape[0] !== count || tensor.shape[1] !== D) {
      throw FarmError.invalid(`the decoder task needs the embeddings of its ${count} source(s), float32 [${count}, ${D}]`);
    }
    return Array.from({ length: count }, (_, s) => tensor.data.slice(s * D, (s + 1) * D));
  }

  async function sourceImage(key: string) {
    return resizeImage(await decodeImage(await store.get(key)), decoder.size);
  }
}
