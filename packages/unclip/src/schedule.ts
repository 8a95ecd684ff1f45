export interface NoiseSchedule {
  betas: Float64Array;
  alphasCumprod: Float64Array;
}

/** The squaredcos_cap_v2 (cosine) schedule of diffusers / improved DDPM over trainTimesteps steps. */
export function squaredcosCapV2(trainTimesteps = 1000): NoiseSchedule {
  const alphaBar = (s: number) => Math.cos(((s + 0.008) / 1.008) * (Math.PI / 2)) ** 2;
  const betas = new Float64Array(trainTimesteps);
  const alphasCumprod = new Float64Array(trainTimesteps);
  let product = 1;
  for (let i = 0; i < trainTimesteps; i++) {
    betas[i] = Math.min(1 - alphaBar((i + 1) / trainTimesteps) / alphaBar(i / trainTimesteps), 0.999);
    product *= 1 - betas[i];
    alphasCumprod[i] = product;
  }
  return { betas, alphasCumprod };
}

/**
 * n timesteps τ_k = round(k·(T−1)/(n−1)), descending, exactly as np.round(np.linspace(0, T−1, n)) and diffusers compute
 * them: k times the float step (not k·(T−1) divided), rounded half to even.
 */
export function respacedTimesteps(n: number, trainTimesteps = 1000): number[] {
  if (!Number.isInteger(n) || n < 1 || n > trainTimesteps) {
    throw new RangeError(`steps must be an integer from 1 to ${trainTimesteps}, got ${n}`);
  }
  if (n === 1) return [trainTimesteps - 1];
  const step = (trainTimesteps - 1) / (n - 1);
  const steps: number[] = [];
  for (let k = n - 1; k >= 0; k--) steps.push(roundHalfEven(k * step));
  return steps;
}

export function roundHalfEven(x: number): number {
  const floor = Math.floor(x);
  const diff = x - floor;
  if (diff > 0.5) return floor + 1;
  if (diff < 0.5) return floor;
  return floor % 2 === 0 ? floor : floor + 1;
}
