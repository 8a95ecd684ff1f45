import { Tensor, type InferenceSession } from "onnxruntime-node";
import type { Bundle, EmbeddingStats } from "./bundle.js";
import { resolveDiffusionOptions, type DiffusionOptions } from "./diffusion-options.js";
import { applyGuidance } from "./guidance.js";
import { BundleError, type ClipSection, type PriorSection } from "./manifest.js";
import { GaussianNoise } from "./noise.js";
import { createSampler } from "./samplers.js";
import type { PromptTokenizer } from "./tokenizer.js";

export interface PromptItem {
  prompt: string;
  seed: bigint;
}

/**
 * The prior stage: CLIP text encoder, then the diffusion prior sampled on the host with classifier-free guidance on x̂0.
 * Returns each prompt's CLIP image embedding (D floats, de-normalised with the bundle's embedding stats).
 */
export class TextToEmbedding {
  private readonly tokenizer: PromptTokenizer;
  private readonly textEncoder: InferenceSession;
  private readonly prior: InferenceSession;
  private readonly clip: ClipSection;
  private readonly section: PriorSection;
  private readonly stats: EmbeddingStats;

  constructor(readonly bundle: Bundle) {
    const { tokenizer, sessions, manifest, embeddingStats } = bundle;
    if (!tokenizer || !sessions.textEncoder || !sessions.prior || !manifest.clip || !manifest.prior || !embeddingStats) {
      throw new BundleError('TextToEmbedding needs the "tokenizer", "clip" and "prior" sections loaded', bundle.dir);
    }
    this.tokenizer = tokenizer;
    this.textEncoder = sessions.textEncoder;
    this.prior = sessions.prior;
    this.clip = manifest.clip;
    this.section = manifest.prior;
    if (this.section.scheduler.variance !== "fixed_small_log") {
      throw new BundleError("prior: only variance fixed_small_log is supported (the prior predicts D values)", bundle.dir);
    }
    this.stats = embeddingStats;
  }

  async run(items: readonly PromptItem[], options: DiffusionOptions = {}): Promise<Float32Array[]> {
    const { steps, guidance, sampler: samplerName, signal, onStep } = resolveDiffusionOptions(this.section, options);
    const n = items.length;
    if (n === 0) return [];
    const D = this.clip.embedDim;
    const L = this.tokenizer.maxLength;
    const H = this.clip.hiddenDim;

    // Row 0 is the empty prompt (the unconditional half), rows 1..n the prompts.
    const tokens = this.tokenizer.encode(["", ...items.map((item) => item.prompt)]);
    signal?.throwIfAborted();
    const encoded = await this.textEncoder.run({ input_ids: new Tensor("int64", tokens.inputIds, [n + 1, L]) });
    const textEmbeds = encoded.text_embeds.data as Float32Array;
    const hidden = encoded.last_hidden_state.data as Float32Array;

    const proj = new Float32Array(2 * n * D);
    const context = new Float32Array(2 * n * L * H);
    const mask = new Uint8Array(2 * n * L);
    for (let b = 0; b < n; b++) {
      proj.set(textEmbeds.subarray(0, D), b * D);
      context.set(hidden.subarray(0, L * H), b * L * H);
      mask.set(tokens.attentionMask.subarray(0, L), b * L);
      proj.set(textEmbeds.subarray((b + 1) * D, (b + 2) * D), (n + b) * D);
      context.set(hidden.subarray((b + 1) * L * H, (b + 2) * L * H), (n + b) * L * H);
      mask.set(tokens.attentionMask.subarray((b + 1) * L, (b + 2) * L), (n + b) * L);
    }
    const fixedInputs = {
      proj_embedding: new Tensor("float32", proj, [2 * n, D]),
      encoder_hidden_states: new Tensor("float32", context, [2 * n, L, H]),
      attention_mask: new Tensor("bool", mask, [2 * n, L]),
    };

    const sampler = createSampler(samplerName, this.section.scheduler, D);
    sampler.setTimesteps(steps);
    const generators = items.map((item) => new GaussianNoise(item.seed));
    const x = new Float32Array(n * D);
    generators.forEach((g, b) => g.fill(x, b * D, (b + 1) * D));
    const hiddenStates = new Float32Array(2 * n * D);
    const timestep = new BigInt64Array(2 * n);
    const guided = new Float32Array(n * D);
    const noise = new Float32Array(n * D);

    const timesteps = sampler.timesteps;
    for (let k = 0; k < timesteps.length; k++) {
      signal?.throwIfAborted();
      const t = timesteps[k];
      hiddenStates.set(x, 0);
      hiddenStates.set(x, n * D);
      timestep.fill(BigInt(t));
      const result = await this.prior.run({
        ...fixedInputs,
        hidden_states: new Tensor("float32", hiddenStates, [2 * n, D]),
        timestep: new Tensor("int64", timestep, [2 * n]),
      });
      applyGuidance(result.predicted_image_embedding.data as Float32Array, n, guidance, D, guided);
      if (sampler.needsNoise(k)) generators.forEach((g, b) => g.fill(noise, b * D, (b + 1) * D));
      sampler.step(guided, t, k, x, noise);
      onStep?.(k + 1, timesteps.length);
    }

    const { mean, std } = this.stats;
    return items.map((_, b) => {
      const embedding = x.slice(b * D, (b + 1) * D);
      for (let j = 0; j < D; j++) embedding[j] = embedding[j] * std[j] + mean[j];
      return embedding;
    });
  }
}
