import type { DiffusionDefaults, SamplerName } from "./manifest.js";

export interface DiffusionOptions {
  /** Defaults to the manifest's defaultSteps / defaultGuidance / defaultSampler. */
  steps?: number;
  guidance?: number;
  sampler?: SamplerName;
  /** Checked before every step; an aborted run rejects with the signal's reason. */
  signal?: AbortSignal;
  /** Called after each step with the 1-based step number. */
  onStep?: (step: number, total: number) => void;
}

export function resolveDiffusionOptions(defaults: DiffusionDefaults, options: DiffusionOptions) {
  const guidance = options.guidance ?? defaults.defaultGuidance;
  if (!Number.isFinite(guidance)) throw new RangeError(`guidance must be a finite number, got ${guidance}`);
  return {
    steps: options.steps ?? defaults.defaultSteps,
    guidance,
    sampler: options.sampler ?? defaults.defaultSampler,
    signal: options.signal,
    onStep: options.onStep,
  };
}
