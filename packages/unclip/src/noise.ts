import { uniformFloat64 } from "pure-rand/distribution/uniformFloat64";
import { xoroshiro128plusFromState } from "pure-rand/generator/xoroshiro128plus";
import type { RandomGenerator } from "pure-rand/types/RandomGenerator";

const UINT64 = (1n << 64n) - 1n;

/**
 * Standard normal values from a seeded xoroshiro128+ (state expanded from the uint64 seed by splitmix64) and the
 * Box–Muller transform in Marsaglia's polar form (no trigonometry, about twice as fast). Integer-exact generator plus
 * V8's deterministic Math.log and Math.sqrt: a seed gives the same sequence on every machine.
 */
export class GaussianNoise {
  private readonly rng: RandomGenerator;
  private spare = 0;
  private hasSpare = false;
  private second = 0;

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
    const first = this.pair();
    this.spare = this.second;
    this.hasSpare = true;
    return first;
  }

  /** Fills out[start, end) with the next values of the sequence, exactly as that many next() calls would. */
  fill(out: Float32Array, start = 0, end = out.length): Float32Array {
    let i = start;
    if (i < end && this.hasSpare) out[i++] = this.next();
    for (; i + 1 < end; i += 2) {
      out[i] = this.pair();
      out[i + 1] = this.second;
    }
    if (i < end) out[i] = this.next();
    return out;
  }

  /** Draws two independent normals: returns the first, leaves the second in this.second. */
  private pair(): number {
    let u: number;
    let v: number;
    let s: number;
    do {
      u = 2 * uniformFloat64(this.rng) - 1;
      v = 2 * uniformFloat64(this.rng) - 1;
      s = u * u + v * v;
    } while (s >= 1 || s === 0);
    const scale = Math.sqrt((-2 * Math.log(s)) / s);
    this.second = v * scale;
    return u * scale;
  }
}
