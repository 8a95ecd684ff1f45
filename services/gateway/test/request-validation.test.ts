import { beforeAll, describe, expect, it } from "vitest";
import { status } from "@grpc/grpc-js";
import { Stage } from "@unclip/protocol";
import { fileURLToPath } from "node:url";
import { crc32 } from "node:zlib";
import { loadBundleTokenizer } from "@unclip/unclip/tokenizer";
import sharp from "sharp";
import { afterEach } from "vitest";
import { PixelBudget } from "../src/pixel-budget.js";
import { setPromptTokenizer } from "../src/prompt-tokens.js";
import { upscaleRoute, validateCommon, validateImage, validateJobId, validatePrompt } from "../src/request-validation.js";

const TINY_BUNDLE = fileURLToPath(new URL("../../../models/tiny-random/", import.meta.url));

describe("request validation", () => {
  it("trims prompts and counts characters, not UTF-16 units", () => {
    expect(validatePrompt("  a red circle ")).toBe("a red circle");
    expect(validatePrompt("🟥".repeat(500))).toHaveLength(1000);
    expect(() => validatePrompt("🟥".repeat(501))).toThrow(/501 characters/);
  });

  it("answers INVALID_ARGUMENT", () => {
    try {
      validatePrompt("");
    } catch (err) {
      expect((err as { code: number }).code).toBe(status.INVALID_ARGUMENT);
      return;
    }
    throw new Error("expected a refusal");
  });

  it("fills defaults: one image, 1024 px, a random non-zero seed", () => {
    const p = validateCommon({ numImages: 0, size: 0, seed: 0n });
    expect(p.numImages).toBe(1);
    expect(p.size).toBe(1024);
    expect(p.seed).toBeGreaterThan(0n);
    expect(p.urlTtlSeconds).toBe(3600);
    expect(validateCommon({ numImages: 2, size: 64, seed: 5n }).seed).toBe(5n);
  });

  it("routes to the requested size", () => {
    expect(upscaleRoute(64)).toEqual([]);
    expect(upscaleRoute(256)).toEqual([Stage.UPSCALE_256]);
    expect(upscaleRoute(1024)).toEqual([Stage.UPSCALE_256, Stage.UPSCALE_1024]);
  });

  it("accepts the farm's job ids only", () => {
    expect(validateJobId("5cbd4322-7369-4776-9dc0-e7507cd831d1")).toBe("5cbd4322-7369-4776-9dc0-e7507cd831d1");
    expect(() => validateJobId("../x")).toThrow(/not a job id/);
    expect(() => validateJobId("")).toThrow(/job_id is empty/);
  });
});

describe("prompts a person cannot see or the model cannot read", () => {
  afterEach(() => setPromptTokenizer(undefined));

  it("refuses prompts of only invisible characters (format characters and whitespace) as empty", () => {
    for (const prompt of ["\u200B\u200C\u200D", "\u2060 \uFEFF", "\u202E\u202D\u202C", " \u200B\t\u00A0\u3000 "]) {
      expect(() => validatePrompt(prompt), JSON.stringify(prompt)).toThrow(/prompt is empty \(or only invisible characters\)/);
    }
    expect(validatePrompt("\u200Ba red circle")).toBe("\u200Ba red circle");
  });

  it("refuses DEL and C1 control characters like C0 ones", () => {
    expect(() => validatePrompt("a red\u007Fcircle")).toThrow(/contains control characters/);
    expect(() => validatePrompt("a red\u0085circle")).toThrow(/contains control characters/);
    expect(validatePrompt("a red\ncircle\tnow")).toBe("a red\ncircle\tnow");
  });

  it("counts tokens with the bundle's tokenizer and names the count and the limit", async () => {
    setPromptTokenizer(await loadBundleTokenizer(TINY_BUNDLE));
    const words = (n: number) => new Array(n).fill("red").join(" ");
    expect(validatePrompt(words(16))).toBe(words(16));
    expect(() => validatePrompt(words(17))).toThrow("prompt is 17 tokens; this model reads at most 16");
    expect(() => validatePrompt(` ${words(40)} `, "items[3].prompt")).toThrow(/^items\[3\]\.prompt is 40 tokens/);
    // Without a tokenizer only the characters are checked.
    setPromptTokenizer(undefined);
    expect(validatePrompt(words(17))).toBe(words(17));
  });
});

/** A PNG chunk with its length and CRC. */
function chunk(type: string, data: Buffer): Buffer {
  const body = Buffer.concat([Buffer.from(type, "latin1"), data]);
  const out = Buffer.alloc(body.length + 8);
  out.writeUInt32BE(data.length, 0);
  body.copy(out, 4);
  out.writeUInt32BE(crc32(body) >>> 0, body.length + 4);
  return out;
}

/** Rewrites the IHDR's dimensions (with a valid CRC), leaving the pixel data as they are. */
function withHeaderSize(png: Buffer, width: number, height: number): Buffer {
  const out = Buffer.from(png);
  out.writeUInt32BE(width, 16);
  out.writeUInt32BE(height, 20);
  out.writeUInt32BE(crc32(out.subarray(12, 29)) >>> 0, 29);
  return out;
}

describe("uploads are decoded in full before admission", () => {
  let png: Buffer;
  beforeAll(async () => {
    const noise = Buffer.from(Array.from({ length: 64 * 64 * 3 }, (_, i) => (i * 7919) % 251));
    png = await sharp(noise, { raw: { width: 64, height: 64, channels: 3 } })
      .png()
      .toBuffer();
  });

  const refused = async (bytes: Uint8Array, message: RegExp) => {
    await expect(validateImage(bytes, "image")).rejects.toMatchObject({ code: status.INVALID_ARGUMENT, message });
  };

  it("accepts an intact PNG and JPEG and returns their size", async () => {
    expect(await validateImage(png, "image")).toEqual({ width: 64, height: 64 });
    const jpeg = await sharp(png).resize(40, 24).jpeg().toBuffer();
    expect(await validateImage(jpeg, "mask")).toEqual({ width: 40, height: 24 });
  });

  it("refuses truncated files and pixel data that do not match the header", async () => {
    await refused(png.subarray(0, Math.floor(png.length * 0.6)), /^image is a damaged PNG \(.+\): upload an intact PNG or JPEG$/);
    // A flipped byte inside the compressed data, with the chunk's CRC recomputed so only the data are wrong.
    const idat = png.indexOf("IDAT");
    const length = png.readUInt32BE(idat - 4);
    const corrupt = Buffer.from(png);
    corrupt[idat + 40] ^= 0xff;
    corrupt.writeUInt32BE(crc32(corrupt.subarray(idat, idat + 4 + length)) >>> 0, idat + 4 + length);
    await refused(corrupt, /damaged PNG/);
    await refused(withHeaderSize(png, 128, 128), /damaged PNG/);
    await refused(withHeaderSize(png, 32, 32), /damaged PNG/);
    const jpeg = await sharp(png).jpeg().toBuffer();
    await refused(jpeg.subarray(0, jpeg.length - 200), /^image is a damaged JPEG/);
  });

  it("refuses every damaged upload also when many are decoded at once", async () => {
    const jpeg = await sharp(png).jpeg().toBuffer();
    const damaged = [
      png.subarray(0, png.length - 400),
      withHeaderSize(png, 128, 128),
      withHeaderSize(png, 32, 32),
      jpeg.subarray(0, jpeg.length - 200),
    ];
    const results = await Promise.allSettled(
      Array.from({ length: 64 }, (_, i) => validateImage(Buffer.from(damaged[i % damaged.length]!), "image")),
    );
    expect(results.filter((r) => r.status === "fulfilled")).toHaveLength(0);
  });

  it("refuses a decompression bomb by its header, before decoding", async () => {
    // 20000×20000 stated, 64×64 of data behind it: refused on the header's size, not after a 1.6 GB decode.
    await refused(withHeaderSize(png, 20_000, 20_000), /^image is 20000x20000 px; sides must be 8 to 4096 px$/);
    const ihdr = Buffer.alloc(13);
    ihdr.writeUInt32BE(4096, 0);
    ihdr.writeUInt32BE(1_000_000, 4);
    ihdr.set([8, 0, 0, 0, 0], 8);
    const tall = Buffer.concat([png.subarray(0, 8), chunk("IHDR", ihdr), chunk("IEND", Buffer.alloc(0))]);
    await refused(tall, /4096x1000000 px/);
  });

  it("refuses other formats, tiny images and empty or oversized uploads", async () => {
    await refused(await sharp(png).webp().toBuffer(), /^image is webp; upload a PNG or JPEG$/);
    await refused(await sharp(png).gif().toBuffer(), /^image is gif/);
    await refused(await sharp(png).resize(1, 1).png().toBuffer(), /1x1 px/);
    await refused(new Uint8Array(0), /^image is empty/);
    await refused(new Uint8Array(16 * 1024 * 1024 + 1), /16777217 bytes; the limit is 16777216 \(16 MiB\)/);
    await refused(Buffer.from("<svg xmlns='http://www.w3.org/2000/svg' width='64' height='64'/>"), /^image is svg; upload a PNG or JPEG$/);
  });
});

describe("PixelBudget", () => {
  it("runs work up to its capacity at once and queues the rest in arrival order", async () => {
    const budget = new PixelBudget(100);
    let running = 0;
    let peak = 0;
    const started: number[] = [];
    const job = (i: number, pixels: number) =>
      budget.run(pixels, async () => {
        started.push(i);
        running++;
        peak = Math.max(peak, running);
        expect(budget.inUse).toBeLessThanOrEqual(100);
        await new Promise((r) => setTimeout(r, 5 * (i + 1)));
        running--;
      });
    await Promise.all([job(0, 50), job(1, 50), job(2, 50), job(3, 60), job(4, 10)]);
    expect(peak).toBe(2);
    // job 4 would fit beside job 2 but waits behind job 3 rather than overtaking it
    expect(started).toEqual([0, 1, 2, 3, 4]);
    expect(budget.inUse).toBe(0);
    // work larger than the budget runs alone instead of waiting forever; a failure releases its share
    await expect(budget.run(1_000, () => Promise.reject(new Error("boom")))).rejects.toThrow("boom");
    expect(budget.inUse).toBe(0);
  });
});
