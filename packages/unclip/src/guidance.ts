/**
 * Classifier-free guidance over one model run on a batch of 2n rows ([uncond; cond], each `batched.length / 2n` values):
 * out = uncond + g·(cond − uncond) on the first `guidedSize` values of each row, the rest (learned variance) from cond.
 */
export function applyGuidance(
  batched: Float32Array,
  n: number,
  guidance: number,
  guidedSize: number,
  out = new Float32Array(batched.length / 2),
): Float32Array {
  const rowSize = batched.length / (2 * n);
  if (!Number.isInteger(rowSize) || guidedSize > rowSize || out.length !== n * rowSize) {
    throw new RangeError(`guidance: ${batched.length} values do not form 2×${n} rows of at least ${guidedSize}`);
  }
  const condOffset = n * rowSize;
  for (let b = 0; b < n; b++) {
    const row = b * rowSize;
    for (let j = 0; j < guidedSize; j++) {
      const uncond = batched[row + j];
      out[row + j] = uncond + guidance * (batched[condOffset + row + j] - uncond);
    }
    if (guidedSize < rowSize) out.set(batched.subarray(condOffset + row + guidedSize, condOffset + row + rowSize), row + guidedSize);
  }
  return out;
}
