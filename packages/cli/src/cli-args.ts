import { InvalidArgumentError, Option, type Command } from "commander";
import { create, SamplingOptionsSchema, type SamplingOptions } from "@unclip/protocol";

/** A mistake in how the CLI was called (bad flags, an unreadable batch file): exit status 2, no stack. */
export class UsageError extends Error {
  override name = "UsageError";
}

export const int = (v: string): number => {
  const n = Number(v);
  if (!Number.isInteger(n) || n < 0) throw new InvalidArgumentError("expected a whole number");
  return n;
};

export const num = (v: string): number => {
  const n = Number(v);
  if (!Number.isFinite(n)) throw new InvalidArgumentError("expected a number");
  return n;
};

/** A decimal uint64 (seeds). */
export const uint64 = (v: string): bigint => {
  if (!/^\d{1,20}$/.test(v) || BigInt(v) >= 1n << 64n) throw new InvalidArgumentError("expected a whole number below 2^64");
  return BigInt(v);
};

/** --seed as a bigint (default 0 = random). */
export const seedOption = (): Option =>
  new Option("--seed <seed>", "seed of the first image (0 = random)").argParser(uint64).default(0n, "0");

/** Flags of SamplingOptions, shared by render, vary, edit and batch. */
export const samplingFlags = (cmd: Command): Command =>
  cmd
    .option("--prior-steps <n>", "prior diffusion steps (0 = model default)", int, 0)
    .option("--decoder-steps <n>", "decoder diffusion steps (0 = model default)", int, 0)
    .option("--prior-guidance <g>", "prior guidance scale (0 = model default)", num, 0)
    .option("--decoder-guidance <g>", "decoder guidance scale (0 = model default)", num, 0)
    .option("--sampler <name>", "ddpm or ddim (default: the model's)", "");

export type SamplingFlags = { priorSteps: number; decoderSteps: number; priorGuidance: number; decoderGuidance: number; sampler: string };

export const samplingOptions = (o: SamplingFlags): SamplingOptions =>
  create(SamplingOptionsSchema, {
    priorSteps: o.priorSteps,
    decoderSteps: o.decoderSteps,
    priorGuidance: o.priorGuidance,
    decoderGuidance: o.decoderGuidance,
    sampler: o.sampler,
  });
