import { expect, it } from "vitest";
import { featherWeights, tileStarts } from "../src/plan-tiles.js";

it("covers every length with tiles whose blend weights sum to 1 wherever they overlap once", () => {
  const problems: string[] = [];
  for (const tile of [8, 16, 48])
    for (let overlap = 0; overlap < tile; overlap += 3)
      for (let length = 1; length <= 160; length++) {
        const size = Math.min(length, tile);
        const starts = tileStarts(length, size, overlap);
        const where = `length ${length}, tile ${tile}, overlap ${overlap}`;
        if (starts[0] !== 0 || starts.at(-1)! + size !== length) problems.push(`${where}: tiles [${starts}] do not span it`);
        const total = new Float32Array(length * 2);
        const cover = new Uint8Array(length * 2);
        starts.forEach((start, i) => {
          if (i > 0 && start - starts[i - 1] > size - overlap) problems.push(`${where}: tiles [${starts}] overlap less than asked`);
          featherWeights(starts, i, size, 2).forEach((w, x) => {
            total[start * 2 + x] += w;
            cover[start * 2 + x]++;
          });
        });
        for (let x = 0; x < total.length; x++) {
          if (!(total[x] > 0) || (cover[x] <= 2 && Math.abs(total[x] - 1) > 1e-5)) problems.push(`${where}: weight ${total[x]} at ${x}`);
        }
      }
  expect(problems.slice(0, 5)).toEqual([]);
});
