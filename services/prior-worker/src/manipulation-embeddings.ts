import { FarmError, type ObjectStore, type StageOutput, type TaskContext } from "@unclip/core";
import { encodeTensor } from "@unclip/protocol";
import {
  ImageToEmbedding,
  interpolationFraction,
  PromptTooLongError,
  slerp,
  TextDiff,
  TextDiffError,
  transformEmbedding,
  type Bundle,
} from "@unclip/unclip";
import { decodeImage, ImageInputError, type RgbImage } from "@unclip/unclip/image";

type Results = (StageOutput | Error)[];

/**
 * The prior pool's stages of the image manipulations (DALL·E 2 §3): the embeddings each image of the job is decoded
 * from, plus the sources' own embeddings, which the decoder inverts the sources under. No prior diffusion runs: the
 * embeddings come from the CLIP encoders. Tasks of one job share their sources, so each is read and encoded once per batch.
 */
export function manipulationEmbeddings(bundle: Bundle, store: ObjectStore) {
  const imageToEmbedding = bundle.sessions.imageEncoder ? new ImageToEmbedding(bundle) : undefined;
  const textDiff = new TextDiff(bundle);
  const vector = (data: Float32Array) => encodeTensor({ dtype: "float32", shape: [1, data.length], data });
  const rows = (...vectors: Float32Array[]) => {
    const data = new Float32Array(vectors.reduce((n, v) => n + v.length, 0));
    vectors.forEach((v, i) => data.set(v, i * v.length));
    return encodeTensor({ dtype: "float32", shape: [vectors.length, vectors[0]!.length], data });
  };

  /** Each task's source keys, read, decoded and CLIP-encoded once per key; a task whose sources fail gets the error. */
  async function encodeSources(batch: readonly TaskContext[], keysOf: (ctx: TaskContext) => string[]) {
    const images = new Map<string, Promise<RgbImage>>();
    const read = (key: string) => {
      if (!images.has(key)) images.set(key, store.get(key).then(decodeImage));
      return images.get(key)!;
    };
    const sources: (RgbImage[] | Error)[] = [];
    for (const ctx of batch) {
      try {
        sources.push(await Promise.all(keysOf(ctx).map(read)));
      } catch (err) {
        sources.push(err instanceof ImageInputError ? FarmError.invalid(err.message) : (err as Error));
      }
    }
    const unique = [...new Set(sources.flatMap((s) => (s instanceof Error ? [] : s)))];
    const embeddings = new Map<RgbImage, Float32Array>();
    (await imageToEmbedding!.run(unique)).forEach((e, i) => embeddings.set(unique[i]!, e));
    return sources.map((s) => (s instanceof Error ? s : s.map((image) => embeddings.get(image)!)));
  }

  const noEncoder = (batch: readonly TaskContext[], what: string) =>
    batch.map(() => FarmError.invalid(`model bundle ${bundle.id} has no CLIP image encoder, so it cannot make ${what}`));

  return {
    /** interpolate-embed: frame i's embedding slerp(z_a, z_b, i/(frames−1)); sources [z_a; z_b]. */
    async interpolate(batch: readonly TaskContext[]): Promise<Results> {
      if (!imageToEmbedding) return noEncoder(batch, "interpolations");
      const encoded = await encodeSources(batch, ({ task }) => [task.params!.sourceKey, task.params!.sourceBKey]);
      return batch.map(({ task }, i) => {
        const e = encoded[i]!;
        if (e instanceof Error) return e;
        const [a, b] = e as [Float32Array, Float32Array];
        const t = interpolationFraction(task.index, task.params!.numImages);
        return { embedding: vector(slerp(a, b, t)), sourceEmbeddings: rows(a, b) };
      });
    },

    /** text-diff: slerp(z_i, z_d, strength) with z_d the unit text diff (to − from); sources [z_i]. */
    async textDiff(batch: readonly TaskContext[]): Promise<Results> {
      if (!imageToEmbedding) return noEncoder(batch, "transforms");
      const encoded = await encodeSources(batch, ({ task }) => [task.params!.sourceKey]);
      // One text-encoder call per distinct caption pair, so a pair the encoder refuses fails only its own tasks.
      const directions = new Map<string, Promise<Float32Array>>();
      const direction = (to: string, from: string) => {
        const key = JSON.stringify([to, from]);
        if (!directions.has(key))
          directions.set(
            key,
            textDiff.run([{ to, from }]).then(([d]) => d!),
          );
        return directions.get(key)!;
      };
      const results: Results = [];
      for (let i = 0; i < batch.length; i++) {
        const { task } = batch[i]!;
        const e = encoded[i]!;
        if (e instanceof Error) {
          results.push(e);
          continue;
        }
        const [image] = e as [Float32Array];
        try {
          const d = await direction(task.params!.prompt, task.params!.fromPrompt);
          results.push({ embedding: vector(transformEmbedding(image, d, task.params!.strength)), sourceEmbeddings: rows(image) });
        } catch (err) {
          const bad = err instanceof PromptTooLongError || err instanceof TextDiffError;
          results.push(bad ? FarmError.invalid((err as Error).message) : (err as Error));
        }
      }
      return results;
    },
  };
}
