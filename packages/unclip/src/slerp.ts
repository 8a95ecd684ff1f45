/**
 * Spherical interpolation from a (t = 0) to b (t = 1): sin((1−t)Ω)/sin Ω · a + sin(tΩ)/sin Ω · b, with Ω the angle
 * between them. On vectors of equal length it stays on their sphere, which is why the manipulations (DALL·E 2 §3)
 * interpolate CLIP embeddings and DDIM latents with it rather than linearly. t = 0 and t = 1 give a and b exactly.
 * Nearly parallel or opposite vectors (sin Ω < 1e-6), where the angle says nothing, are interpolated linearly.
 */
export function slerp(a: Float32Array, b: Float32Array, t: number): Float32Array {
  if (a.length !== b.length) throw new RangeError(`slerp: vectors of ${a.length} and ${b.length} values`);
  if (!Number.isFinite(t)) throw new RangeError(`slerp: t must be a finite number, got ${t}`);
  if (t === 0) return Float32Array.from(a);
  if (t === 1) return Float32Array.from(b);
  let dot = 0;
  let aa = 0;
  let bb = 0;
  for (let i = 0; i < a.length; i++) {
    dot += a[i] * b[i];
    aa += a[i] * a[i];
    bb += b[i] * b[i];
  }
  const cos = aa > 0 && bb > 0 ? Math.min(1, Math.max(-1, dot / Math.sqrt(aa * bb))) : 1;
  const omega = Math.acos(cos);
  const sin = Math.sin(omega);
  const [wa, wb] = sin < 1e-6 ? [1 - t, t] : [Math.sin((1 - t) * omega) / sin, Math.sin(t * omega) / sin];
  const out = new Float32Array(a.length);
  for (let i = 0; i < a.length; i++) out[i] = wa * a[i] + wb * b[i];
  return out;
}

/** The slerp fraction of frame i of an interpolation of n frames: i/(n−1), so the first and last frames are the sources. */
export function interpolationFraction(index: number, frames: number): number {
  if (!Number.isInteger(frames) || frames < 2) throw new RangeError(`an interpolation has at least 2 frames, got ${frames}`);
  if (!Number.isInteger(index) || index < 0 || index >= frames) throw new RangeError(`frame ${index} is not one of 0..${frames - 1}`);
  return index / (frames - 1);
}
