import { Option, type Command } from "commander";
import { create, SamplingOptionsSchema, type SamplingOptions } from "@unclip/protocol";

/** A mistake in how the CLI was called (bad flags, an unreadable input file): exit status 2, no stack. */
export class UsageError extends Error {
  override name = "UsageError";
}

const UINT64_MAX = (1n << 64n) - 1n;

/**
 * Flag parsers. Each names its flag and says what it expects, e.g. `--seed: "abc" is not a whole number from 0 to
 * 18446744073709551615`. They throw UsageError (not commander's InvalidArgumentError) so that the message is ours.
 */
export const wholeNumber =
  (flag: string, min: number, max: number, note = "") =>
  (v: string): number => {
    const n = /^\s*\d+\s*$/.test(v) ? Number(v) : NaN;
    if (!Number.isSafeInteger(n) || n < min || n > max) {
      throw new UsageError(`${flag}: ${JSON.stringify(v)} is not a whole number from ${min} to ${max}${note}`);
    }
    return n;
  };

/** One of a few whole numbers (--size). */
export const oneOf =
  (flag: string, allowed: readonly number[]) =>
  (v: string): number => {
    const n = /^\s*\d+\s*$/.test(v) ? Number(v) : NaN;
    if (!allowed.includes(n)) throw new UsageError(`${flag}: ${JSON.stringify(v)} is not one of ${allowed.join(", ")}`);
    return n;
  };

/** A guidance scale: 0 (the model's default) or a number from 1 to 50, as the gateway accepts. */
export const guidance =
  (flag: string) =>
  (v: string): number => {
    const g = v.trim() === "" ? NaN : Number(v);
    if (!Number.isFinite(g) || g < 0 || (g > 0 && g < 1) || g > 50) {
      throw new UsageError(`${flag}: ${JSON.stringify(v)} is not a number from 1 to 50 (or 0 for the model's default)`);
    }
    return g;
  };

/** A number from 0 to 1 (--strength). */
export const fraction =
  (flag: string) =>
  (v: string): number => {
    const x = v.trim() === "" ? NaN : Number(v);
    if (!(x >= 0 && x <= 1)) throw new UsageError(`${flag}: ${JSON.stringify(v)} is not a number from 0 to 1`);
    return x;
  };

/** A decimal uint64 (seeds). */
export const uint64 =
  (flag: string) =>
  (v: string): bigint => {
    if (!/^\s*\d{1,20}\s*$/.test(v) || BigInt(v.trim()) > UINT64_MAX) {
      throw new UsageError(`${flag}: ${JSON.stringify(v)} is not a whole number from 0 to ${UINT64_MAX}`);
    }
    return BigInt(v.trim());
  };

/** --sampler: ddpm, ddim, or empty for the model's default. */
export const sampler = (v: string): string => {
  const s = v.trim().toLowerCase();
  if (s !== "" && s !== "ddpm" && s !== "ddim") throw new UsageError(`--sampler: ${JSON.stringify(v)} is not ddpm or ddim`);
  return s;
};

/** gRPC target schemes grpc-js resolves besides plain host:port. */
const TARGET_SCHEMES = /^(dns|unix|unix-abstract|ipv4|ipv6|vsock):./;

/**
 * A gateway address: host:port (a name, an IPv4 address or a bracketed IPv6 address, and a port 1-65535) or a gRPC
 * target URI (dns:///host:port, unix:/path, ipv4:…, ipv6:…). `source` names where it came from in the message.
 */
export function parseAddress(v: string, source: string): string {
  const s = v.trim();
  const hostPort = /^(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9](?:[A-Za-z0-9.-]*[A-Za-z0-9])?):(\d{1,5})$/.exec(s);
  if (hostPort) {
    const port = Number(hostPort[2]);
    if (port >= 1 && port <= 65535) return s;
    throw new UsageError(`${source}: ${JSON.stringify(v)} has port ${hostPort[2]}; ports are 1 to 65535`);
  }
  if (TARGET_SCHEMES.test(s)) return s;
  if (/^[a-z]+:\/\//i.test(s)) {
    throw new UsageError(`${source}: ${JSON.stringify(v)} is a URL; give host:port (and --tls for a TLS endpoint)`);
  }
  throw new UsageError(
    `${source}: ${JSON.stringify(v)} is not host:port (e.g. 127.0.0.1:50051 or [::1]:50051) or a gRPC target (dns:///host:port, unix:/path)`,
  );
}

/** -n: images per request (the gateway renders 1 to 8). */
const imagesOption = (what: string): Option =>
  new Option("-n, --images <n>", `${what} (1-8)`).argParser(wholeNumber("--images", 1, 8)).default(1);

/** -s: output size. */
const sizeOption = (): Option =>
  new Option("-s, --size <px>", "output size: 64, 256 or 1024").argParser(oneOf("--size", [64, 256, 1024])).default(1024);

/** --seed as a bigint (default 0 = random). */
const seedOption = (): Option =>
  new Option("--seed <seed>", "seed of the first image, 0 to 2^64-1 (image i uses seed + i; 0 = random)")
    .argParser(uint64("--seed"))
    .default(0n, "0");

const decoderStepsOption = (): Option =>
  new Option("--decoder-steps <n>", "decoder diffusion steps, 1-1000 (default: the model's)").argParser(
    wholeNumber("--decoder-steps", 0, 1000, " (0 = the model's default)"),
  );

/** Flags of SamplingOptions; left out = the model's default. */
const samplingFlags = (cmd: Command): Command =>
  cmd
    .addOption(
      new Option("--prior-steps <n>", "prior diffusion steps, 1-1000 (default: the model's)").argParser(
        wholeNumber("--prior-steps", 0, 1000, " (0 = the model's default)"),
      ),
    )
    .addOption(decoderStepsOption())
    .addOption(
      new Option("--prior-guidance <g>", "prior guidance scale, 1-50 (default: the model's)").argParser(guidance("--prior-guidance")),
    )
    .addOption(
      new Option("--decoder-guidance <g>", "decoder guidance scale, 1-50 (default: the model's)").argParser(guidance("--decoder-guidance")),
    )
    .addOption(new Option("--sampler <name>", "ddpm or ddim (default: the model's)").argParser(sampler));

type SamplingFlags = {
  priorSteps?: number;
  decoderSteps?: number;
  priorGuidance?: number;
  decoderGuidance?: number;
  sampler?: string;
};

/** The SamplingOptions the flags ask for; zero values (flags left out) mean the model's defaults. */
const samplingOptions = (o: SamplingFlags): SamplingOptions =>
  create(SamplingOptionsSchema, {
    priorSteps: o.priorSteps ?? 0,
    decoderSteps: o.decoderSteps ?? 0,
    priorGuidance: o.priorGuidance ?? 0,
    decoderGuidance: o.decoderGuidance ?? 0,
    sampler: o.sampler ?? "",
  });

/** The flags that shape the images (render, vary, edit and batch): -n, counting `images`, -s, --seed and sampling. */
export const imageFlags = (cmd: Command, images: string): Command =>
  samplingFlags(cmd.addOption(imagesOption(images)).addOption(sizeOption()).addOption(seedOption()));

export type ImageFlags = SamplingFlags & { images: number; size: number; seed: bigint };

/** The request fields the image flags ask for. */
export const imageSettings = (o: ImageFlags) => ({ numImages: o.images, size: o.size, seed: o.seed, sampling: samplingOptions(o) });

/**
 * The flags of interpolate and transform: -s and the decoder's steps and guidance. They run no prior and always
 * decode with DDIM, so the other sampling flags are not offered; their seed and image count flags are their own.
 */
export const manipulationFlags = (cmd: Command): Command =>
  cmd
    .addOption(sizeOption())
    .addOption(decoderStepsOption())
    .addOption(
      new Option("--decoder-guidance <g>", "decoder guidance scale, 1-50 (default 1: no classifier-free guidance)").argParser(
        guidance("--decoder-guidance"),
      ),
    );

export type ManipulationFlags = { size: number; decoderSteps?: number; decoderGuidance?: number };

/** The request fields the manipulation flags ask for. */
export const manipulationSettings = (o: ManipulationFlags) => ({
  size: o.size,
  sampling: samplingOptions({ decoderSteps: o.decoderSteps, decoderGuidance: o.decoderGuidance }),
});

/** --json, the same on every command. */
export const jsonOption = (what: string): Option =>
  new Option("--json", `print ${what} as protobuf JSON (lowerCamelCase field names, as grpcurl does); nothing else on stdout`);
