import { FarmError, type StageHandler, type StageOutput, type TaskContext, type ObjectStore } from "@unclip/core";
import { decodeFloat32, Stage, type StageTask } from "@unclip/protocol";
import { EmbeddingToImage, type Bundle } from "@unclip/unclip";
import { decodeImage, decodeMask, encodePng, ImageInputError, resizeImage } from "@unclip/unclip/image";

/** decoder-worker: CLIP image embedding → 64 px image, plain or inpainting (edits). */
export function decoderHandler(bundle: Bundle, store: ObjectStore): StageHandler & { close(): Promise<void> } {
  const decoder = bundle.manifest.decoder!;
  const embeddingToImage = new EmbeddingToImage(bundle);
  const settings = (task: StageTask) => ({
    steps: task.params!.decoderSteps || decoder.defaultSteps,
    guidance: task.params!.decoderGuidance || decoder.defaultGuidance,
    sampler: (task.params!.sampler || decoder.defaultSampler) as "ddpm" | "ddim",
  });

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
    const items = [];
    const ok: number[] = [];
    for (let i = 0; i < batch.length; i++) {
      const { task } = batch[i]!;
      try {
        if (!task.imageEmbedding) throw FarmError.invalid("the decoder task carries no image embedding");
        const embedding = decodeFloat32(task.imageEmbedding).data;
        if (embedding.length !== decoder.embedDim) {
          throw FarmError.invalid(`the image embedding has ${embedding.length} values; bundle ${bundle.id} expects ${decoder.embedDim}`);
        }
        items.push({ embedding, seed: task.seed, inpaint: task.params!.maskKey ? await inpaintInputs(task) : undefined });
        ok.push(i);
      } catch (err) {
        results[i] = err instanceof ImageInputError ? FarmError.invalid(err.message) : (err as Error);
      }
    }
    if (ok.length === 0) return results;
    const images = await embeddingToImage.run(items, {
      ...settings(batch[ok[0]!]!.task),
      signal,
      onStep: (step, total) => ok.forEach((i) => batch[i]!.progress(step, total)),
    });
    for (let k = 0; k < ok.length; k++) results[ok[k]!] = { png: await encodePng(images[k]!) };
    return results;
  }

  async function inpaintInputs(task: StageTask) {
    const image = await resizeImage(await decodeImage(await store.get(task.params!.sourceKey)), decoder.size);
    const keep = await decodeMask(await store.get(task.params!.maskKey), decoder.size);
    return { image, keep };
  }
}
