// A procedural checker for the shapes world (models/train/world.py): reads background colour from the border pixels,
// the object as the pixels far from the background, its colour (nearest palette colour, majority), its centroid
// (nearest position anchor) and its shape (silhouette cropped to its bounding box, best IoU against rendered templates).
import type { RgbImage } from "@unclip/unclip";

export interface World {
  palette: Record<string, [number, number, number]>;
  shapes: string[];
  positions: Record<string, [number, number]>;
  /** per shape, 64×64 0/1 masks of the shape at a few sizes */
  templates: Record<string, number[][][]>;
}

export interface Verdict {
  bg: string;
  colour: string | null;
  shape: string | null;
  position: string | null;
  objectPixels: number;
}

const GRID = 24;
const FAR = 60; // RGB distance from the background colour that counts as object

function dist2(a: ArrayLike<number>, ai: number, b: readonly number[]): number {
  const dr = a[ai] - b[0];
  const dg = a[ai + 1] - b[1];
  const db = a[ai + 2] - b[2];
  return dr * dr + dg * dg + db * db;
}

export class ShapesChecker {
  private readonly names: string[];
  private readonly colours: [number, number, number][];
  private readonly templates: { shape: string; grid: Uint8Array }[] = [];

  constructor(readonly world: World) {
    this.names = Object.keys(world.palette);
    this.colours = this.names.map((n) => world.palette[n]);
    for (const [shape, masks] of Object.entries(world.templates)) {
      for (const m of masks) {
        const S = m.length;
        const flat = new Uint8Array(S * S);
        m.forEach((row, y) => row.forEach((v, x) => (flat[y * S + x] = v)));
        this.templates.push({ shape, grid: cropToGrid(flat, S) });
      }
    }
  }

  /** Nearest palette colour of pixel p. */
  nearest(data: ArrayLike<number>, p: number): string {
    let best = 0;
    let bestD = Infinity;
    this.colours.forEach((c, i) => {
      const d = dist2(data, 3 * p, c);
      if (d < bestD) {
        bestD = d;
        best = i;
      }
    });
    return this.names[best];
  }

  majority(data: ArrayLike<number>, pixels: Iterable<number>): string | null {
    const votes = new Map<string, number>();
    for (const p of pixels) {
      const n = this.nearest(data, p);
      votes.set(n, (votes.get(n) ?? 0) + 1);
    }
    let best: string | null = null;
    let bestN = 0;
    for (const [k, v] of votes) if (v > bestN) [best, bestN] = [k, v];
    return best;
  }

  /** Pixels of `img` (optionally only inside `region`) that are far from the palette colour `bg`. */
  objectMask(img: RgbImage, bg: string, region?: (p: number) => boolean): Uint8Array {
    const S = img.width;
    const mask = new Uint8Array(S * S);
    const c = this.world.palette[bg];
    for (let p = 0; p < S * S; p++) if ((!region || region(p)) && dist2(img.data, 3 * p, c) > FAR * FAR) mask[p] = 1;
    return mask;
  }

  check(img: RgbImage): Verdict {
    const S = img.width;
    const border: number[] = [];
    for (let y = 0; y < S; y++)
      for (let x = 0; x < S; x++) if (x < 2 || y < 2 || x >= S - 2 || y >= S - 2) border.push(y * S + x);
    const bg = this.majority(img.data, border)!;
    const mask = this.objectMask(img, bg);
    const pixels: number[] = [];
    mask.forEach((v, p) => v && pixels.push(p));
    if (pixels.length < 12) return { bg, colour: null, shape: null, position: null, objectPixels: pixels.length };
    const colour = this.majority(img.data, pixels);
    let sx = 0;
    let sy = 0;
    for (const p of pixels) {
      sx += (p % S) + 0.5;
      sy += Math.floor(p / S) + 0.5;
    }
    const cx = sx / pixels.length;
    const cy = sy / pixels.length;
    let position: string | null = null;
    let bestD = Infinity;
    for (const [name, [ax, ay]] of Object.entries(this.world.positions)) {
      const d = (cx - ax) ** 2 + (cy - ay) ** 2;
      if (d < bestD) [position, bestD] = [name, d];
    }
    return { bg, colour, shape: this.shapeOf(mask, S), position, objectPixels: pixels.length };
  }

  shapeOf(mask: Uint8Array, S: number): string | null {
    const grid = cropToGrid(mask, S);
    let best: string | null = null;
    let bestIou = -1;
    for (const t of this.templates) {
      let inter = 0;
      let union = 0;
      for (let i = 0; i < grid.length; i++) {
        inter += grid[i] & t.grid[i];
        union += grid[i] | t.grid[i];
      }
      const iou = union ? inter / union : 0;
      if (iou > bestIou) [best, bestIou] = [t.shape, iou];
    }
    return best;
  }
}

/** The mask's bounding box resampled (nearest) to GRID×GRID. */
function cropToGrid(mask: Uint8Array, S: number): Uint8Array {
  let x0 = S;
  let y0 = S;
  let x1 = -1;
  let y1 = -1;
  for (let p = 0; p < S * S; p++) {
    if (!mask[p]) continue;
    const x = p % S;
    const y = Math.floor(p / S);
    if (x < x0) x0 = x;
    if (y < y0) y0 = y;
    if (x > x1) x1 = x;
    if (y > y1) y1 = y;
  }
  const grid = new Uint8Array(GRID * GRID);
  if (x1 < 0) return grid;
  const w = x1 - x0 + 1;
  const h = y1 - y0 + 1;
  for (let gy = 0; gy < GRID; gy++)
    for (let gx = 0; gx < GRID; gx++) {
      const x = x0 + Math.min(w - 1, Math.floor(((gx + 0.5) * w) / GRID));
      const y = y0 + Math.min(h - 1, Math.floor(((gy + 0.5) * h) / GRID));
      grid[gy * GRID + gx] = mask[y * S + x];
    }
  return grid;
}
