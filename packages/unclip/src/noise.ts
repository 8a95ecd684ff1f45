import { uniformFloat64 } from "pure-rand/distribution/uniformFloat64";
import { xoroshiro128plusFromState } from "pure-rand/generator/xoroshiro128plus";
import type { RandomGenerator } from "pure-rand/types/RandomGenerator";

const UINT64 = (1n << 64n) - 1n;

/**
 * Standard normal values from a seeded xoroshiro128+ (state expanded from the uint64 seed by splitmix64) and the
 * Box–Muller transform. Integer-exact generator plus V8's deterministic Math.log/cos/sin: a seed gives the same sequence
 * on every machine.
 */
export class GaussianNoise {
  private readonly rng: RandomGenerator;
  private spare = 0;
  private hasSpare = false;

  constructor(readonly seed: bigint) {
    if (seed < 0n || seed > UINT64) throw new RangeError(`seed must be a uint64, got ${seed}`);
    let state = seed;
    const words: number[] = [];
    for (let i = 0; i < 2; i++) {
      state = (state + 0x9e3779b97f4a7c15n) & UINT64;
      let z = state;
      z = ((z ^ (z >> 30n)) * 0xbf58476d1ce4e5b9n) & UINT64;
      z = ((z ^ (z >> 27n)) * 0x94d049bb133111ebn) & UINT64;
      z ^= z >> 31n;
      words.push(Number(BigInt.asIntN(32, z >> 32n)), Number(BigInt.asIntN(32, z)));
    }
    // splitmix64 never gives two zero outputs in a row, so the all-zero state xoroshiro forbids cannot occur.
    this.rng = xoroshiro128plusFromState(words);
  }

  next(): number {
    if (this.hasSpare) {
      this.hasSpare = false;
      return this.spare;
    }
    const u1 = 1 - uniformFloat64(this.rng);
    const angle = 2 * Math.PI * uniformFloat64(this.rng);
    const radius = Math.sqrt(-2 * Math.log(u1));
    this.spare = radius * Math.sin(angle);
    this.hasSpare = true;
    return radius * Math.cos(angle);
  }

  fill(out: Float32Array, start = 0, end = out.length): Float32Array {
    for (let i = start; i < end; i++) out[i] = this.next();
    return out;
  }
}
