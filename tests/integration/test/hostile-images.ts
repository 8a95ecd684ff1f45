import { crc32 } from "node:zlib";
import sharp from "sharp";

/** Uploads a stranger might send: intact ones to start from, and broken, disguised or oversized ones. */
export interface HostileImages {
  /** An intact 64×64 noise PNG and JPEG, and a 64×32 PNG (another aspect ratio). */
  png: Buffer;
  jpeg: Buffer;
  widePng: Buffer;
  truncatedPng: Buffer;
  /** One byte of the compressed pixel data flipped, the chunk's CRC recomputed: only the data are wrong. */
  corruptIdat: Buffer;
  /** The same flipped byte with the old CRC: a checksum mismatch. */
  badCrc: Buffer;
  /** The header says 128×128 (or 32×32), the data hold 64×64. */
  headerLarger: Buffer;
  headerSmaller: Buffer;
  truncatedJpeg: Buffer;
  gif: Buffer;
  webp: Buffer;
  tiff: Buffer;
  svg: Buffer;
  bmp: Buffer;
  onePixel: Buffer;
  sevenPixels: Buffer;
  /** Headers that promise 5000×5000 and 20000×20000 over 64×64 of data. */
  header5000: Buffer;
  header20000: Buffer;
  /** A real 8192×8192 image, black, compressed to a few hundred KiB: 200 MB once decoded. */
  bomb8192: Buffer;
  /** A 4096×4096 image (the largest accepted) cut short: fully decoded before it is refused. */
  truncated4096: Buffer;
}

/** A PNG whose IHDR states other dimensions (with a valid CRC) than its pixel data hold. */
export function withHeaderSize(png: Buffer, width: number, height: number): Buffer {
  const out = Buffer.from(png);
  out.writeUInt32BE(width, 16);
  out.writeUInt32BE(height, 20);
  out.writeUInt32BE(crc32(out.subarray(12, 29)) >>> 0, 29);
  return out;
}

export function noise(width: number, height: number, seed = 1): Buffer {
  const data = Buffer.alloc(width * height * 3);
  let s = seed >>> 0 || 1;
  for (let i = 0; i < data.length; i++) {
    s ^= s << 13;
    s ^= s >>> 17;
    s ^= s << 5;
    data[i] = s & 0xff;
  }
  return data;
}

export async function noisePng(width: number, height: number, seed = 1): Promise<Buffer> {
  return sharp(noise(width, height, seed), { raw: { width, height, channels: 3 } })
    .png({ compressionLevel: 1 })
    .toBuffer();
}

/** A 64×64 24-bit BMP, written by hand (libvips in sharp reads no BMP). */
function bmp(): Buffer {
  const w = 64;
  const h = 64;
  const row = w * 3;
  const out = Buffer.alloc(54 + row * h, 0x80);
  out.write("BM", 0, "latin1");
  out.writeUInt32LE(out.length, 2);
  out.writeUInt32LE(54, 10);
  out.writeUInt32LE(40, 14);
  out.writeInt32LE(w, 18);
  out.writeInt32LE(h, 22);
  out.writeUInt16LE(1, 26);
  out.writeUInt16LE(24, 28);
  out.writeUInt32LE(0, 30);
  out.writeUInt32LE(row * h, 34);
  return out;
}

export async function hostileImages(): Promise<HostileImages> {
  const png = await noisePng(64, 64);
  const raw = { raw: { width: 64, height: 64, channels: 3 as const } };
  const idat = png.indexOf("IDAT");
  const length = png.readUInt32BE(idat - 4);
  const badCrc = Buffer.from(png);
  badCrc[idat + 40] ^= 0xff;
  const corruptIdat = Buffer.from(badCrc);
  corruptIdat.writeUInt32BE(crc32(corruptIdat.subarray(idat, idat + 4 + length)) >>> 0, idat + 4 + length);
  const jpeg = await sharp(noise(64, 64), raw).jpeg().toBuffer();
  const black = (side: number) => sharp({ create: { width: side, height: side, channels: 3, background: "#000" } });
  const big = await black(4096).png({ compressionLevel: 9 }).toBuffer();
  return {
    png,
    jpeg,
    widePng: await noisePng(64, 32, 2),
    truncatedPng: png.subarray(0, Math.floor(png.length * 0.6)),
    corruptIdat,
    badCrc,
    headerLarger: withHeaderSize(png, 128, 128),
    headerSmaller: withHeaderSize(png, 32, 32),
    truncatedJpeg: jpeg.subarray(0, jpeg.length - 300),
    gif: await sharp(noise(64, 64), raw).gif().toBuffer(),
    webp: await sharp(noise(64, 64), raw).webp().toBuffer(),
    tiff: await sharp(noise(64, 64), raw).tiff().toBuffer(),
    svg: Buffer.from("<svg xmlns='http://www.w3.org/2000/svg' width='100000' height='100000'><rect width='100%' height='100%'/></svg>"),
    bmp: bmp(),
    onePixel: await sharp(noise(1, 1), { raw: { width: 1, height: 1, channels: 3 } })
      .png()
      .toBuffer(),
    sevenPixels: await sharp(noise(7, 64), { raw: { width: 7, height: 64, channels: 3 } })
      .png()
      .toBuffer(),
    header5000: withHeaderSize(png, 5000, 5000),
    header20000: withHeaderSize(png, 20_000, 20_000),
    bomb8192: await black(8192).png({ compressionLevel: 9 }).toBuffer(),
    truncated4096: big.subarray(0, big.length - 2000),
  };
}
