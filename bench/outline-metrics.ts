// Outline metrics of one flat object on a flat background (the shapes world), at sub-pixel precision.
//
// Object-ness: each pixel's colour projected onto the background→object colour axis, 0 at the background, 1 at the
// object (clamped). The outline: from the centroid of the pixels with object-ness ≥ 0.5, along `rays` equally spaced
// rays, object-ness is sampled bilinearly every 0.5 px (pixel x's centre at x + 0.5) and the outermost 0.5 crossing is
// placed by linear interpolation between the two samples around it. A ray that leaves the image still inside the object
// (or never meets it) has no outline point. Every length is in pixels of the image measured.
import type { RgbImage } from "@unclip/upscaler";

export type Rgb = readonly [number, number, number];

export interface ObjectColours {
  bg: Rgb;
  object: Rgb;
}

export interface Outline {
  /** Ray origin: the centroid of the pixels with object-ness ≥ 0.5. */
  cx: number;
  cy: number;
  /** Ray angles (radians, 0 = +x, y down) and the outline's distance from the origin along each; NaN: no point. */
  theta: Float64Array;
  radius: Float64Array;
}

/** RGB distance from the background beyond which a pixel is object, as the shapes checker counts it. */
const FAR = 60;
const RAY_STEP = 0.5;

const median = (values: number[]) => {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)];
};

/**
 * The background colour (per-channel median of the 2 px border) and the object colour (per-channel median of the pixels
 * more than 60 from it) of an image with one flat object: read from the 64 px input, so every method's output of the
 * same image is measured on the same axis.
 */
export function objectColours(image: RgbImage): ObjectColours {
  const { width, height, data } = image;
  const border: number[][] = [[], [], []];
  for (let y = 0; y < height; y++)
    for (let x = 0; x < width; x++)
      if (x < 2 || y < 2 || x >= width - 2 || y >= height - 2) for (let c = 0; c < 3; c++) border[c].push(data[(y * width + x) * 3 + c]);
  const bg = border.map(median) as unknown as Rgb;
  const object: number[][] = [[], [], []];
  for (let i = 0; i < data.length; i += 3) {
    if ((data[i] - bg[0]) ** 2 + (data[i + 1] - bg[1]) ** 2 + (data[i + 2] - bg[2]) ** 2 > FAR * FAR)
      for (let c = 0; c < 3; c++) object[c].push(data[i + c]);
  }
  if (object[0].length === 0) throw new Error(`no pixel of the ${width}x${height} image is more than ${FAR} from its background`);
  return { bg, object: object.map(median) as unknown as Rgb };
}

/** Object-ness of every pixel, row-major, 0..1. */
export function objectness(image: RgbImage, { bg, object }: ObjectColours): Float32Array {
  const axis = [object[0] - bg[0], object[1] - bg[1], object[2] - bg[2]];
  const norm = axis[0] ** 2 + axis[1] ** 2 + axis[2] ** 2;
  const out = new Float32Array(image.width * image.height);
  const { data } = image;
  for (let p = 0; p < out.length; p++) {
    const t = ((data[3 * p] - bg[0]) * axis[0] + (data[3 * p + 1] - bg[1]) * axis[1] + (data[3 * p + 2] - bg[2]) * axis[2]) / norm;
    out[p] = t < 0 ? 0 : t > 1 ? 1 : t;
  }
  return out;
}

/** `map` (width × height, row-major) interpolated bilinearly at (x, y), pixel x's centre being at x + 0.5. */
function bilinear(map: Float32Array, width: number, height: number, x: number, y: number): number {
  const fx = Math.min(width - 1, Math.max(0, x - 0.5));
  const fy = Math.min(height - 1, Math.max(0, y - 0.5));
  const x0 = Math.min(width - 2, Math.floor(fx));
  const y0 = Math.min(height - 2, Math.floor(fy));
  const tx = fx - x0;
  const ty = fy - y0;
  const i = y0 * width + x0;
  return (map[i] * (1 - tx) + map[i + 1] * tx) * (1 - ty) + (map[i + width] * (1 - tx) + map[i + width + 1] * tx) * ty;
}

/** The outline of the object in `map` (object-ness, width × height), along `rays` rays from its centroid. */
export function traceOutline(map: Float32Array, width: number, height: number, rays = 720): Outline {
  let sx = 0;
  let sy = 0;
  let n = 0;
  for (let p = 0; p < map.length; p++)
    if (map[p] >= 0.5) {
      sx += (p % width) + 0.5;
      sy += Math.floor(p / width) + 0.5;
      n++;
    }
  if (n === 0) throw new Error("no pixel has object-ness 0.5 or more");
  const cx = sx / n;
  const cy = sy / n;
  const sample = (x: number, y: number) => bilinear(map, width, height, x, y);
  const theta = new Float64Array(rays);
  const radius = new Float64Array(rays).fill(NaN);
  for (let k = 0; k < rays; k++) {
    theta[k] = (2 * Math.PI * k) / rays;
    const dx = Math.cos(theta[k]);
    const dy = Math.sin(theta[k]);
    // Samples stay between the outermost pixel centres, where bilinear interpolation needs no made-up neighbours.
    const exit = Math.min(
      dx > 0 ? (width - 0.5 - cx) / dx : dx < 0 ? (0.5 - cx) / dx : Infinity,
      dy > 0 ? (height - 0.5 - cy) / dy : dy < 0 ? (0.5 - cy) / dy : Infinity,
    );
    // Walked inwards from the border: the first sample at 0.5 or more ends the outermost crossing, in less than half
    // the samples of a walk outwards. At the border itself it means the object is cut there: no outline on this ray.
    let outer = sample(cx + exit * dx, cy + exit * dy);
    if (outer >= 0.5) continue;
    for (let i = Math.floor(exit / RAY_STEP); i >= 0; i--) {
      const s = i * RAY_STEP;
      const value = sample(cx + s * dx, cy + s * dy);
      if (value >= 0.5) {
        const next = Math.min(exit, s + RAY_STEP);
        radius[k] = s + ((value - 0.5) / (value - outer)) * (next - s);
        break;
      }
      outer = value;
    }
  }
  return { cx, cy, theta, radius };
}

/** Solves the least-squares problem min |A x − b| through its normal equations (Gaussian elimination, partial pivoting). */
function leastSquares(rows: number[][], b: number[]): number[] {
  const m = rows[0].length;
  const ata = Array.from({ length: m }, () => new Array<number>(m + 1).fill(0));
  rows.forEach((row, r) => {
    for (let i = 0; i < m; i++) {
      for (let j = 0; j < m; j++) ata[i][j] += row[i] * row[j];
      ata[i][m] += row[i] * b[r];
    }
  });
  for (let col = 0; col < m; col++) {
    let pivot = col;
    for (let r = col + 1; r < m; r++) if (Math.abs(ata[r][col]) > Math.abs(ata[pivot][col])) pivot = r;
    [ata[col], ata[pivot]] = [ata[pivot], ata[col]];
    for (let r = 0; r < m; r++) {
      if (r === col) continue;
      const f = ata[r][col] / ata[col][col];
      for (let c = col; c <= m; c++) ata[r][c] -= f * ata[col][c];
    }
  }
  return ata.map((row, i) => row[m] / row[i]);
}

const rms = (values: number[]) => Math.sqrt(values.reduce((s, v) => s + v * v, 0) / values.length);

/** The rays that found an outline point, as angles, distances and points. */
function points(outline: Outline) {
  const out: { theta: number; radius: number; x: number; y: number }[] = [];
  outline.radius.forEach((radius, k) => {
    const theta = outline.theta[k];
    if (Number.isFinite(radius))
      out.push({ theta, radius, x: outline.cx + radius * Math.cos(theta), y: outline.cy + radius * Math.sin(theta) });
  });
  return out;
}

/** Fewer outline points than this share of the rays and a metric is NaN: the object is too cut by the border to judge. */
const MIN_RAY_SHARE = 0.5;

/**
 * Edge roughness: the RMS residual (px) of r(θ) after a least-squares Fourier series up to `harmonics`. Harmonics 1–8
 * absorb an off-centre origin, ellipticity and lumps spanning 1/8 of a turn or more, so what remains is the fine
 * wiggle of the edge: a staircase, ringing, tile seams.
 */
export function edgeRoughness(outline: Outline, harmonics = 8): number {
  const pts = points(outline);
  if (pts.length < MIN_RAY_SHARE * outline.theta.length) return NaN;
  const basis = (t: number) => [1, ...Array.from({ length: harmonics }, (_, k) => [Math.cos((k + 1) * t), Math.sin((k + 1) * t)]).flat()];
  const rows = pts.map((p) => basis(p.theta));
  const coef = leastSquares(
    rows,
    pts.map((p) => p.radius),
  );
  return rms(pts.map((p, i) => p.radius - rows[i].reduce((s, v, j) => s + v * coef[j], 0)));
}

/**
 * Distance from the best-fit circle: the RMS (px) of each outline point's distance from the centre minus the radius,
 * after a geometric least-squares circle fit (Kåsa's algebraic fit, refined by Gauss–Newton). Unlike roughness it
 * also counts low-frequency departures: an egg or a lumpy disc.
 */
export function circleDistance(outline: Outline): number {
  const pts = points(outline);
  if (pts.length < MIN_RAY_SHARE * outline.theta.length) return NaN;
  const [d, e, f] = leastSquares(
    pts.map((p) => [p.x, p.y, 1]),
    pts.map((p) => -(p.x * p.x + p.y * p.y)),
  );
  let [a, b, r] = [-d / 2, -e / 2, Math.sqrt((d * d + e * e) / 4 - f)];
  const residuals = () => pts.map((p) => Math.hypot(p.x - a, p.y - b) - r);
  for (let it = 0; it < 10; it++) {
    const jacobian = pts.map((p) => {
      const rho = Math.hypot(p.x - a, p.y - b);
      return [(a - p.x) / rho, (b - p.y) / rho, -1];
    });
    const [da, db, dr] = leastSquares(
      jacobian,
      residuals().map((v) => -v),
    );
    [a, b, r] = [a + da, b + db, r + dr];
    if (Math.hypot(da, db, dr) < 1e-9) break;
  }
  return rms(residuals());
}

/** Share of each side, at either end, left out of the straight-edge fit: upscalers round corners, and that is not a side. */
const CORNER_TRIM = 0.15;
/** How far (radians) from the ideal polygon's angle a corner is looked for. */
const CORNER_WINDOW = Math.PI / 6;

/**
 * Straight-edge deviation of a convex polygon with `corners` corners (4: square, 3: triangle), in px. Corners: the
 * outline point farthest from the centroid, then the farthest within ±30° of each further multiple of 360°/corners
 * from it. Each side is the outline points between two neighbouring corners whose projection onto the corner-to-corner
 * chord lies in the middle 70 % of it (15 % trimmed at each corner); a line is fitted to them by total least squares.
 * The result is the RMS perpendicular distance of all those points from their side's line.
 */
export function straightEdgeDeviation(outline: Outline, corners: number): number {
  const pts = points(outline);
  if (pts.length < MIN_RAY_SHARE * outline.theta.length) return NaN;
  const angleBetween = (a: number, b: number) => Math.abs(Math.atan2(Math.sin(a - b), Math.cos(a - b)));
  const farthest = (near?: number) =>
    pts.reduce<(typeof pts)[number] | undefined>(
      (best, p) => ((near === undefined || angleBetween(p.theta, near) <= CORNER_WINDOW) && (!best || p.radius > best.radius) ? p : best),
      undefined,
    );
  const first = farthest()!;
  const found = [first];
  for (let k = 1; k < corners; k++) {
    const corner = farthest(first.theta + (2 * Math.PI * k) / corners);
    if (!corner) return NaN;
    found.push(corner);
  }
  found.sort((p, q) => p.theta - q.theta);
  const distances: number[] = [];
  found.forEach((from, i) => {
    const to = found[(i + 1) % corners];
    const [vx, vy] = [to.x - from.x, to.y - from.y];
    const length2 = vx * vx + vy * vy;
    const side = pts.filter((p) => {
      const u = ((p.x - from.x) * vx + (p.y - from.y) * vy) / length2;
      const between = i < corners - 1 ? p.theta > from.theta && p.theta < to.theta : p.theta > from.theta || p.theta < to.theta;
      return between && u >= CORNER_TRIM && u <= 1 - CORNER_TRIM;
    });
    if (side.length < 2) return;
    const mx = side.reduce((s, p) => s + p.x, 0) / side.length;
    const my = side.reduce((s, p) => s + p.y, 0) / side.length;
    let sxx = 0;
    let syy = 0;
    let sxy = 0;
    for (const p of side) {
      sxx += (p.x - mx) ** 2;
      syy += (p.y - my) ** 2;
      sxy += (p.x - mx) * (p.y - my);
    }
    // The line's direction is the principal axis of the points; the normal is perpendicular to it.
    const angle = 0.5 * Math.atan2(2 * sxy, sxx - syy);
    const [nx, ny] = [-Math.sin(angle), Math.cos(angle)];
    for (const p of side) distances.push((p.x - mx) * nx + (p.y - my) * ny);
  });
  return distances.length ? rms(distances) : NaN;
}
