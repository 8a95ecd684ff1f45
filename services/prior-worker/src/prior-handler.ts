import { FarmError, type StageHandler, type StageOutput, type TaskContext, type ObjectStore } from "@unclip/core";
import { encodeTensor, Stage, type StageTask } from "@unclip/protocol";
import { ImageToEmbedding, PromptTooLongError, TextToEmbedding, type Bundle } from "@unclip/unclip";
import { decodeImage, ImageInputError } from "@unclip/unclip/image";
import { manipulationEmbeddings } from "./manipulation-embeddings.js";

/**
 * prior-worker: text → CLIP image embedding (CLIP text encoder + diffusion prior), image → embedding (variations), and
 * the embeddings of the image manipulations (interpolations, text diffs).
 */
export function priorHandler(bundle: Bundle, store: ObjectStore): StageHandler & { close(): Promise<void> } {
  const prior = bundle.manifest.prior!;
  const textToEmbedding = new TextToEmbedding(bundle);
  const imageToEmbedding = bundle.sessions.imageEncoder ? new ImageToEmbedding(bundle) : undefined;
  const manipulations = manipulationEmbeddings(bundle, store);
  const settings = (task: StageTask) => ({
    steps: task.params!.priorSteps || prior.defaultSteps,
    guidance: task.params!.priorGuidance || prior.defaultGuidance,
    sampler: (task.params!.sampler || prior.defaultSampler) as "ddpm" | "ddim",
  });

  return {
    pool: "prior",
    bundle: bundle.id,
    executionProvider: bundle.executionProvider,
    defaultSteps: { [Stage.PRIOR]: prior.defaultSteps },
    batchKey: (task) => {
      switch (task.route[0]) {
        case Stage.IMAGE_ENCODE:
          return "encode";
        case Stage.INTERPOLATE_EMBED:
          return "interpolate";
        case Stage.TEXT_DIFF:
          return "text-diff";
        default:
          return JSON.stringify(settings(task));
      }
    },
    async run(batch, signal) {
      switch (batch[0]!.stage) {
        case Stage.IMAGE_ENCODE:
          return encodeImages(batch);
        case Stage.INTERPOLATE_EMBED:
          return manipulations.interpolate(batch);
        case Stage.TEXT_DIFF:
          return manipulations.textDiff(batch);
        default:
          return runPrior(batch, signal);
      }
    },
    close: () => bundle.release(),
  };

  async function runPrior(batch: readonly TaskContext[], signal: AbortSignal): Promise<(StageOutput | Error)[]> {
    // A prompt the tokenizer refuses fails only its own job; the rest of the batch runs.
    const results: (StageOutput | Error)[] = batch.map(() => new Error("not run"));
    const runnable: number[] = [];
    for (let i = 0; i < batch.length; i++) {
      try {
        bundle.tokenizer!.encode([batch[i]!.task.params!.prompt]);
        runnable.push(i);
      } catch (err) {
        results[i] = err instanceof PromptTooLongError ? FarmError.invalid(err.message) : (err as Error);
      }
    }
    if (runnable.length === 0) return results;
    const embeddings = await textToEmbedding.run(
      runnable.map((i) => ({ prompt: batch[i]!.task.params!.prompt, seed: batch[i]!.task.seed })),
      {
        ...settings(batch[0]!.task),
        signal,
        onStep: (step, total) => runnable.forEach((i) => batch[i]!.progress(step, total)),
      },
    );
    runnable.forEach((i, k) => {
      const data = embeddings[k]!;
      results[i] = { embedding: encodeTensor({ dtype: "float32", shape: [1, data.length], data }) };
    });
    return results;
  }

  async function encodeImages(batch: readonly TaskContext[]): Promise<(StageOutput | Error)[]> {
    if (!imageToEmbedding) {
      return batch.map(() => FarmError.invalid(`model bundle ${bundle.id} has no CLIP image encoder, so it cannot make variations`));
    }
    const results: (StageOutput | Error)[] = batch.map(() => new Error("not run"));
    const images = [];
    const ok: number[] = [];
    for (let i = 0; i < batch.length; i++) {
      try {
        images.push(await decodeImage(await store.get(batch[i]!.task.params!.sourceKey)));
        ok.push(i);
      } catch (err) {
        results[i] = err instanceof ImageInputError ? FarmError.invalid(err.message) : (err as Error);
      }
    }
    if (ok.length === 0) return results;
    const embeddings = await imageToEmbedding.run(images);
    ok.forEach((i, k) => {
      const data = embeddings[k]!;
      results[i] = { embedding: encodeTensor({ dtype: "float32", shape: [1, data.length], data }) };
    });
    return results;
  }
}
