import { Tensor, type InferenceSession } from "onnxruntime-node";
import type { Bundle } from "./bundle.js";
import { BundleError, type ClipSection } from "./manifest.js";
import { slerp } from "./slerp.js";
import type { PromptTokenizer } from "./tokenizer.js";

export interface TextDiffItem {
  /** The caption the image should match after the change ("blue"). */
  to: string;
  /** The caption it matches now ("red"); "" for none. */
  from: string;
}

/**
 * Two captions that give no direction to move in: their text embeddings do not differ (or are not finite). The
 * message is meant for the person who sent them.
 */
export class TextDiffError extends Error {
  override name = "TextDiffError";
}

/**
 * The text diff of DALL·E 2 §3.3: z_d = normalise(text_embeds(to) − text_embeds(from)), from the CLIP text encoder
 * alone (no prior). The empty caption is an ordinary input: the bundled encoders pool it to a finite vector (their
 * masked mean over no tokens is 0, not 0/0, and the projection's bias remains; docs/tensor-contract.md §3).
 */
export class TextDiff {
  private readonly tokenizer: PromptTokenizer;
  private readonly textEncoder: InferenceSession;
  private readonly clip: ClipSection;

  constructor(readonly bundle: Bundle) {
    const { tokenizer, sessions, manifest } = bundle;
    if (!tokenizer || !sessions.textEncoder || !manifest.clip) {
      throw new BundleError('TextDiff needs the "tokenizer" and "clip" sections loaded', bundle.dir);
    }
    this.tokenizer = tokenizer;
    this.textEncoder = sessions.textEncoder;
    this.clip = manifest.clip;
  }

  /** One unit-length D-float direction per item; throws TextDiffError when to and from embed the same. */
  async run(items: readonly TextDiffItem[]): Promise<Float32Array[]> {
    const n = items.length;
    if (n === 0) return [];
    const D = this.clip.embedDim;
    const tokens = this.tokenizer.encode([...items.map((item) => item.to), ...items.map((item) => item.from)]);
    const encoded = await this.textEncoder.run({ input_ids: new Tensor("int64", tokens.inputIds, [2 * n, tokens.length]) });
    const text = encoded.text_embeds.data as Float32Array;
    return items.map((item, b) => {
      const diff = new Float32Array(D);
      let norm = 0;
      let scale = 0;
      for (let j = 0; j < D; j++) {
        const to = text[b * D + j];
        const from = text[(n + b) * D + j];
        diff[j] = to - from;
        norm += diff[j] * diff[j];
        scale += to * to + from * from;
      }
      norm = Math.sqrt(norm);
      // A model fault, not a passing one: asking again gives the same, so it fails the job at once too.
      if (!Number.isFinite(norm) || !Number.isFinite(scale)) {
        throw new TextDiffError(`the text encoder of this model gives a non-finite embedding for "${item.to}" or "${item.from}"`);
      }
      // Captions that tokenize alike ("Red" and "red") embed identically: the difference is exactly 0 or rounding.
      if (norm <= 1e-6 * Math.sqrt(scale)) {
        throw new TextDiffError(`"${item.to}" and "${item.from}" read the same to the text encoder, so there is no change to make`);
      }
      for (let j = 0; j < D; j++) diff[j] /= norm;
      return diff;
    });
  }
}

/**
 * z_θ = slerp(z_i, z_d, θ) with θ = strength, the slerp fraction itself: 0 keeps the image's embedding, 0.5 is the end
 * of the range DALL·E 2 §3.3 shows, and 1 is z_d alone, with nothing of the image left. z_d is scaled to z_i's length
 * first, so the result keeps the length of the image embeddings the decoder was trained on (for unit-length
 * embeddings, as shapes-v1's, that is z_d itself).
 */
export function transformEmbedding(imageEmbedding: Float32Array, direction: Float32Array, strength: number): Float32Array {
  if (!(strength >= 0 && strength <= 1)) throw new RangeError(`strength must be from 0 to 1, got ${strength}`);
  let norm = 0;
  for (const v of imageEmbedding) norm += v * v;
  norm = Math.sqrt(norm);
  return slerp(
    imageEmbedding,
    direction.map((v) => v * norm),
    strength,
  );
}
