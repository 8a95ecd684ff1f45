/** p50 and p99 of a latency sample, in ms, and how many values it had. */
export interface Percentiles {
  readonly p50: number;
  readonly p99: number;
  readonly n: number;
}

/** The q-quantile (0..1) by linear interpolation between the closest ranks, NaNs left out; NaN for an empty sample. */
export function quantile(values: readonly number[], q: number): number {
  const sorted = values.filter((v) => Number.isFinite(v)).sort((a, b) => a - b);
  if (sorted.length === 0) return Number.NaN;
  const pos = (sorted.length - 1) * q;
  const lo = Math.floor(pos);
  const hi = Math.ceil(pos);
  return sorted[lo]! + (sorted[hi]! - sorted[lo]!) * (pos - lo);
}

export function percentiles(values: readonly number[]): Percentiles {
  return { p50: quantile(values, 0.5), p99: quantile(values, 0.99), n: values.filter((v) => Number.isFinite(v)).length };
}

export function mean(values: readonly number[]): number {
  return values.length === 0 ? Number.NaN : values.reduce((a, b) => a + b, 0) / values.length;
}

/** "12.3" for a number, "–" for NaN. */
export function fmt(v: number, digits = 1): string {
  return Number.isFinite(v) ? v.toFixed(digits) : "–";
}

/** "p50 / p99" in ms. */
export function fmtP(p: Percentiles, digits = 1): string {
  return `${fmt(p.p50, digits)} / ${fmt(p.p99, digits)}`;
}
