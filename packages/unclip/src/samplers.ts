import type { SamplerName, SchedulerSection } from "./manifest.js";
import { respacedTimesteps, squaredcosCapV2 } from "./schedule.js";

/**
 * A diffusion sampler over a batch stored as one Float32Array of n items of `itemSize` values each (like diffusers'
 * schedulers: setTimesteps, then step once per timestep). With variance "learned_range" the model output holds 2·itemSize
 * values per item: first the ε (or x0) prediction, then the variance interpolation v in [-1, 1].
 */
export interface Sampler {
  readonly timesteps: readonly number[];
  setTimesteps(n: number): void;
  /** Whether step(…, index, …) draws on the noise argument, so callers only generate noise that is used. */
  needsNoise(index: number): boolean;
  /**
   * Moves `sample` (overwritten and returned) from timesteps[index] = t to the next timestep (or to x0 after the last).
   * `noise` holds standard normal values for every element of sample when needsNoise(index).
   */
  step(modelOutput: Float32Array, t: number, index: number, sample: Float32Array, noise?: Float32Array): Float32Array;
}

export function createSampler(name: SamplerName, scheduler: SchedulerSection, itemSize: number): Sampler {
  switch (name) {
    case "ddpm":
      return new DDPMSampler(scheduler, itemSize);
    case "ddim":
      return new DDIMSampler(scheduler, itemSize);
    default:
      throw new RangeError(`unknown sampler "${name as string}" (expected "ddpm" or "ddim")`);
  }
}

abstract class BaseSampler implements Sampler {
  protected readonly alphasCumprod: Float64Array;
  timesteps: readonly number[] = [];

  constructor(
    protected readonly scheduler: SchedulerSection,
    protected readonly itemSize: number,
  ) {
    if (scheduler.schedule !== "squaredcos_cap_v2") throw new RangeError(`unsupported schedule "${scheduler.schedule}"`);
    this.alphasCumprod = squaredcosCapV2(scheduler.trainTimesteps).alphasCumprod;
  }

  setTimesteps(n: number): void {
    this.timesteps = respacedTimesteps(n, this.scheduler.trainTimesteps);
  }

  abstract needsNoise(index: number): boolean;
  abstract step(modelOutput: Float32Array, t: number, index: number, sample: Float32Array, noise?: Float32Array): Float32Array;

  /** ᾱ at t and at the following timestep (1 after the last). */
  protected alphas(t: number, index: number): { alphaT: number; alphaS: number } {
    if (this.timesteps[index] !== t) throw new RangeError(`timestep ${t} is not timesteps[${index}] (${this.timesteps[index]})`);
    const s = index + 1 < this.timesteps.length ? this.timesteps[index + 1] : -1;
    return { alphaT: this.alphasCumprod[t], alphaS: s >= 0 ? this.alphasCumprod[s] : 1 };
  }

  /** Stride of one item in the model output: itemSize, or 2·itemSize with learned-range variance. */
  protected outputStride(modelOutput: Float32Array, sample: Float32Array): number {
    if (sample.length % this.itemSize !== 0) {
      throw new RangeError(`sample has ${sample.length} values, not a multiple of the item size ${this.itemSize}`);
    }
    const stride = this.scheduler.variance === "learned_range" ? 2 * this.itemSize : this.itemSize;
    if (modelOutput.length !== (sample.length / this.itemSize) * stride) {
      throw new RangeError(`model output has ${modelOutput.length} values, expected ${(sample.length / this.itemSize) * stride}`);
    }
    return stride;
  }
}

/** Ancestral DDPM sampling with the respaced posterior (docs/architecture.md §11); no noise is added at the last step. */
export class DDPMSampler extends BaseSampler {
  needsNoise(index: number): boolean {
    return index < this.timesteps.length - 1;
  }

  step(modelOutput: Float32Array, t: number, index: number, sample: Float32Array, noise?: Float32Array): Float32Array {
    const stride = this.outputStride(modelOutput, sample);
    const { alphaT, alphaS } = this.alphas(t, index);
    const addNoise = this.needsNoise(index);
    if (addNoise && (!noise || noise.length !== sample.length)) {
      throw new RangeError(`DDPM step ${index} needs ${sample.length} noise values`);
    }
    const betaTilde = 1 - alphaT / alphaS;
    const x0Coef = (Math.sqrt(alphaS) * betaTilde) / (1 - alphaT);
    const xtCoef = (Math.sqrt(1 - betaTilde) * (1 - alphaS)) / (1 - alphaT);
    const posteriorVariance = (betaTilde * (1 - alphaS)) / (1 - alphaT);
    const fixedSigma = Math.sqrt(Math.max(posteriorVariance, 1e-20));
    const logBeta = Math.log(betaTilde);
    const logPosterior = Math.log(posteriorVariance);
    const learned = this.scheduler.variance === "learned_range";
    const epsilon = this.scheduler.prediction === "epsilon";
    const sqrtAlphaT = Math.sqrt(alphaT);
    const sqrtOneMinusAlphaT = Math.sqrt(1 - alphaT);
    const clip = this.scheduler.clipSample;
    const items = sample.length / this.itemSize;
    for (let b = 0; b < items; b++) {
      const out = b * stride;
      const base = b * this.itemSize;
      for (let j = 0; j < this.itemSize; j++) {
        const x = sample[base + j];
        const prediction = modelOutput[out + j];
        let x0 = epsilon ? (x - sqrtOneMinusAlphaT * prediction) / sqrtAlphaT : prediction;
        x0 = x0 > clip ? clip : x0 < -clip ? -clip : x0;
        let next = x0Coef * x0 + xtCoef * x;
        if (addNoise) {
          let sigma = fixedSigma;
          if (learned) {
            const f = (modelOutput[out + this.itemSize + j] + 1) / 2;
            sigma = Math.exp(0.5 * (f * logBeta + (1 - f) * logPosterior));
          }
          next += sigma * noise![base + j];
        }
        sample[base + j] = next;
      }
    }
    return sample;
  }
}

/**
 * Deterministic DDIM (eta 0). As in diffusers (use_clipped_model_output off), the clamp applies to x̂0 but the ε
 * direction comes from the unclamped prediction.
 */
export class DDIMSampler extends BaseSampler {
  needsNoise(): boolean {
    return false;
  }

  step(modelOutput: Float32Array, t: number, index: number, sample: Float32Array): Float32Array {
    const stride = this.outputStride(modelOutput, sample);
    const { alphaT, alphaS } = this.alphas(t, index);
    const sqrtAlphaT = Math.sqrt(alphaT);
    const sqrtOneMinusAlphaT = Math.sqrt(1 - alphaT);
    const sqrtAlphaS = Math.sqrt(alphaS);
    const sqrtOneMinusAlphaS = Math.sqrt(1 - alphaS);
    const epsilon = this.scheduler.prediction === "epsilon";
    const clip = this.scheduler.clipSample;
    const items = sample.length / this.itemSize;
    for (let b = 0; b < items; b++) {
      const out = b * stride;
      const base = b * this.itemSize;
      for (let j = 0; j < this.itemSize; j++) {
        const x = sample[base + j];
        const prediction = modelOutput[out + j];
        let x0: number;
        let eps: number;
        if (epsilon) {
          eps = prediction;
          x0 = (x - sqrtOneMinusAlphaT * prediction) / sqrtAlphaT;
        } else {
          x0 = prediction;
          eps = (x - sqrtAlphaT * prediction) / sqrtOneMinusAlphaT;
        }
        x0 = x0 > clip ? clip : x0 < -clip ? -clip : x0;
        sample[base + j] = sqrtAlphaS * x0 + sqrtOneMinusAlphaS * eps;
      }
    }
    return sample;
  }
}

/**
 * DDIM inversion (η = 0): DDIMSampler's update run backwards, from a clean sample x0 to the x_T that DDIMSampler with
 * the same number of steps decodes back to it (docs/architecture.md §11, "Image manipulations"). The timesteps ascend,
 * τ_0 … τ_{n−1}, so a decode and an inversion of n steps make the same n model calls in opposite order. Step k moves
 * the sample from the level of τ_{k−1} (ᾱ = 1 before the first step) to τ_k, with the model evaluated at the target τ_k
 * on the current sample, as diffusers' DDIMInverseScheduler does: the result is exact to the extent that the model's
 * ε̂ at the current sample equals the one at the sample it is looking for. An x̂0-predicting model's output is turned
 * into the ε̂ it implies at its own input (x, τ_k) first, which keeps the step well conditioned near ᾱ = 1 (ε̂ derived
 * at the lower level would divide the model's error by √(1 − ᾱ), 0.006 at τ = 0). x̂0 is not clamped on the way up.
 */
export class DDIMInverseSampler extends BaseSampler {
  needsNoise(): boolean {
    return false;
  }

  override setTimesteps(n: number): void {
    this.timesteps = respacedTimesteps(n, this.scheduler.trainTimesteps).reverse();
  }

  step(modelOutput: Float32Array, t: number, index: number, sample: Float32Array): Float32Array {
    const stride = this.outputStride(modelOutput, sample);
    if (this.timesteps[index] !== t) throw new RangeError(`timestep ${t} is not timesteps[${index}] (${this.timesteps[index]})`);
    const alphaFrom = index > 0 ? this.alphasCumprod[this.timesteps[index - 1]] : 1;
    const alphaTo = this.alphasCumprod[t];
    const sqrtAlphaFrom = Math.sqrt(alphaFrom);
    const sqrtOneMinusAlphaFrom = Math.sqrt(1 - alphaFrom);
    const sqrtAlphaTo = Math.sqrt(alphaTo);
    const sqrtOneMinusAlphaTo = Math.sqrt(1 - alphaTo);
    const epsilon = this.scheduler.prediction === "epsilon";
    const items = sample.length / this.itemSize;
    for (let b = 0; b < items; b++) {
      const out = b * stride;
      const base = b * this.itemSize;
      for (let j = 0; j < this.itemSize; j++) {
        const x = sample[base + j];
        const prediction = modelOutput[out + j];
        const eps = epsilon ? prediction : (x - sqrtAlphaTo * prediction) / sqrtOneMinusAlphaTo;
        const x0 = (x - sqrtOneMinusAlphaFrom * eps) / sqrtAlphaFrom;
        sample[base + j] = sqrtAlphaTo * x0 + sqrtOneMinusAlphaTo * eps;
      }
    }
    return sample;
  }
}
