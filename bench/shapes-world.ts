// Scenes of the shapes world (models/train/world.py) rendered in TypeScript, for benchmarks that need more sources of a
// kind than models/train/eval_set.json holds (e.g. 40 red objects). Same geometry as world.py's `inside` and `render`:
// a flat background, one flat object drawn at pixel centres, radius 7–9.5 (small) or 13–16 (large) px, centre within
// ±3 px of its position anchor. Palette and anchors come from the eval set, as the checker's do.
import type { RgbImage } from "@unclip/unclip";
import type { World } from "./shapes-checker.js";

export interface Scene {
  shape: string;
  colour: string;
  bg: string;
  size: "small" | "large";
  position: string;
}

/** Uniform numbers in [0, 1) from a 32-bit seed (mulberry32): the same scenes on every machine. */
export class SceneRandom {
  private state: number;

  constructor(seed: number) {
    this.state = seed >>> 0;
  }

  next(): number {
    this.state = (this.state + 0x6d2b79f5) >>> 0;
    let z = this.state;
    z = Math.imul(z ^ (z >>> 15), z | 1);
    z ^= z + Math.imul(z ^ (z >>> 7), z | 61);
    return ((z ^ (z >>> 14)) >>> 0) / 2 ** 32;
  }

  uniform(lo: number, hi: number): number {
    return lo + (hi - lo) * this.next();
  }

  pick<T>(items: readonly T[]): T {
    return items[Math.floor(this.next() * items.length)];
  }
}

/** Whether (dx, dy), relative to the object's centre, lies inside the shape of radius r (world.py `inside`). */
export function inside(shape: string, dx: number, dy: number, r: number): boolean {
  switch (shape) {
    case "circle":
      return dx * dx + dy * dy <= r * r;
    case "square":
      return Math.abs(dx) <= 0.85 * r && Math.abs(dy) <= 0.85 * r;
    case "triangle":
      return dy >= -r && dy <= 0.8 * r && Math.abs(dx) <= (dy + r) / 1.8;
    case "cross": {
      const w = 0.36 * r;
      return (Math.abs(dx) <= r && Math.abs(dy) <= w) || (Math.abs(dy) <= r && Math.abs(dx) <= w);
    }
    case "star": {
      const R = 1.08 * r;
      const ri = 0.45 * r;
      const sector = (2 * Math.PI) / 5;
      const theta = Math.atan2(dx, -dy);
      const d = Math.sqrt(dx * dx + dy * dy);
      let phi = ((theta % sector) + sector) % sector;
      if (phi > sector / 2) phi = sector - phi;
      const bx = ri * Math.cos(sector / 2);
      const by = ri * Math.sin(sector / 2);
      const nx = by;
      const ny = -(bx - R);
      return nx * d * Math.cos(phi) + ny * d * Math.sin(phi) <= nx * R;
    }
    default:
      throw new RangeError(`unknown shape ${shape}`);
  }
}

/** Renders a scene at 64×64 (world.py `render`), drawing its radius and jitter from `rng`. */
export function renderScene(world: World, scene: Scene, rng: SceneRandom): RgbImage {
  const S = 64;
  const r = scene.size === "small" ? rng.uniform(7, 9.5) : rng.uniform(13, 16);
  const [ax, ay] = world.positions[scene.position];
  const clip = (v: number) => Math.min(S - r + 3, Math.max(r - 3, v));
  const cx = clip(ax + rng.uniform(-3, 3));
  const cy = clip(ay + rng.uniform(-3, 3));
  const bg = world.palette[scene.bg];
  const fg = world.palette[scene.colour];
  const data = new Uint8Array(S * S * 3);
  for (let y = 0; y < S; y++) {
    for (let x = 0; x < S; x++) {
      const c = inside(scene.shape, x + 0.5 - cx, y + 0.5 - cy, r) ? fg : bg;
      data.set(c, (y * S + x) * 3);
    }
  }
  return { width: S, height: S, data };
}

/**
 * A scene with the given attributes fixed and the rest drawn from `rng`: object and background colours differ, and a
 * drawn background is none of the `avoid` colours.
 */
export function drawScene(world: World, rng: SceneRandom, fixed: Partial<Scene> = {}, avoid: readonly string[] = []): Scene {
  const colours = Object.keys(world.palette);
  const colour = fixed.colour ?? rng.pick(colours.filter((c) => c !== fixed.bg));
  return {
    shape: fixed.shape ?? rng.pick(world.shapes),
    colour,
    bg: fixed.bg ?? rng.pick(colours.filter((c) => c !== colour && !avoid.includes(c))),
    size: fixed.size ?? rng.pick(["small", "large"] as const),
    position: fixed.position ?? rng.pick(Object.keys(world.positions)),
  };
}
