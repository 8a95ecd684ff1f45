import { describe, expect, it } from "vitest";
import { Metadata, status } from "@grpc/grpc-js";
import { create, JobSchema, JobState } from "@unclip/protocol";
import { fraction, guidance, oneOf, parseAddress, sampler, uint64, UsageError, wholeNumber } from "../src/cli-args.js";
import { describeError, EXIT, exitCodeFor, isGrpcError } from "../src/exit-codes.js";
import { JobFailedError } from "../src/render-job.js";

const usage = (fn: () => unknown) => {
  try {
    fn();
  } catch (err) {
    expect(err).toBeInstanceOf(UsageError);
    return (err as Error).message;
  }
  throw new Error("expected a UsageError");
};

const grpcError = (code: status, details: string, metadata = new Metadata()) =>
  Object.assign(new Error(`${code} ${status[code]}: ${details}`), { code, details, metadata });

describe("flag parsers", () => {
  it("reads seeds as uint64 and names the flag and range when they are not", () => {
    expect(uint64("--seed")("0")).toBe(0n);
    expect(uint64("--seed")("18446744073709551615")).toBe(18446744073709551615n);
    expect(usage(() => uint64("--seed")("abc"))).toBe('--seed: "abc" is not a whole number from 0 to 18446744073709551615');
    for (const bad of ["18446744073709551616", "-1", "1.5", "1e3", "", "0x10", "99999999999999999999999"]) {
      expect(usage(() => uint64("--seed")(bad))).toMatch(/^--seed: ".*" is not a whole number from 0 to 18446744073709551615$/);
    }
  });

  it("reads whole numbers within their range", () => {
    const images = wholeNumber("--images", 1, 8);
    expect(images("1")).toBe(1);
    expect(images(" 8 ")).toBe(8);
    for (const bad of ["0", "9", "two", "1.5", "-1", "", "1e0"]) {
      expect(usage(() => images(bad))).toBe(`--images: ${JSON.stringify(bad)} is not a whole number from 1 to 8`);
    }
    expect(usage(() => wholeNumber("--prior-steps", 0, 1000, " (0 = the model's default)")("1001"))).toBe(
      `--prior-steps: "1001" is not a whole number from 0 to 1000 (0 = the model's default)`,
    );
  });

  it("reads sizes, guidance scales and samplers", () => {
    const size = oneOf("--size", [64, 256, 1024]);
    expect(size("256")).toBe(256);
    expect(usage(() => size("512"))).toBe('--size: "512" is not one of 64, 256, 1024');
    expect(usage(() => size("big"))).toBe('--size: "big" is not one of 64, 256, 1024');
    const g = guidance("--prior-guidance");
    expect([g("0"), g("1"), g("7.5"), g("50")]).toEqual([0, 1, 7.5, 50]);
    for (const bad of ["0.5", "51", "-1", "abc", "", "NaN", "Infinity"]) {
      expect(usage(() => g(bad))).toBe(
        `--prior-guidance: ${JSON.stringify(bad)} is not a number from 1 to 50 (or 0 for the model's default)`,
      );
    }
    expect([sampler("DDIM"), sampler("ddpm"), sampler("")]).toEqual(["ddim", "ddpm", ""]);
    expect(usage(() => sampler("euler"))).toBe('--sampler: "euler" is not ddpm or ddim');
  });

  it("reads fractions from 0 to 1 (--strength)", () => {
    const strength = fraction("--strength");
    expect([strength("0"), strength("0.6"), strength(" 1 ")]).toEqual([0, 0.6, 1]);
    for (const bad of ["1.5", "-0.1", "", "NaN", "half"]) {
      expect(usage(() => strength(bad))).toBe(`--strength: ${JSON.stringify(bad)} is not a number from 0 to 1`);
    }
  });

  it("accepts host:port and gRPC targets as addresses, and says what is wrong with others", () => {
    for (const ok of [
      "127.0.0.1:50051",
      "localhost:1",
      "gateway.farm.svc.cluster.local:443",
      "[::1]:50051",
      "unix:/tmp/g.sock",
      "dns:///g:443",
    ]) {
      expect(parseAddress(ok, "--address")).toBe(ok);
    }
    expect(usage(() => parseAddress("localhost", "--address"))).toMatch(
      /^--address: "localhost" is not host:port \(e\.g\. 127\.0\.0\.1:50051/,
    );
    expect(usage(() => parseAddress("host:0", "--address"))).toBe('--address: "host:0" has port 0; ports are 1 to 65535');
    expect(usage(() => parseAddress("host:70000", "UNCLIP_GATEWAY"))).toBe(
      'UNCLIP_GATEWAY: "host:70000" has port 70000; ports are 1 to 65535',
    );
    expect(usage(() => parseAddress("https://g.example.com:443", "--address"))).toMatch(/is a URL; give host:port \(and --tls/);
    expect(usage(() => parseAddress("my host:50051", "--address"))).toMatch(/is not host:port/);
  });
});

describe("exit statuses", () => {
  it("is 64 + the gRPC status code for gRPC errors, as grpcurl's", () => {
    expect(exitCodeFor(grpcError(status.NOT_FOUND, "job x does not exist"))).toBe(69);
    expect(exitCodeFor(grpcError(status.INVALID_ARGUMENT, "size 512 is not offered"))).toBe(67);
    expect(exitCodeFor(grpcError(status.ALREADY_EXISTS, "taken"))).toBe(70);
    expect(exitCodeFor(grpcError(status.FAILED_PRECONDITION, "already ended"))).toBe(73);
    expect(exitCodeFor(grpcError(status.UNAVAILABLE, "no connection"))).toBe(78);
    expect(exitCodeFor(grpcError(status.UNAUTHENTICATED, "who are you"))).toBe(80);
  });

  it("is 2 for usage errors, 1 for a job that ended without success, 3 for anything else", () => {
    expect(exitCodeFor(new UsageError("--seed: bad"))).toBe(EXIT.USAGE);
    expect(EXIT.USAGE).toBe(2);
    const failed = create(JobSchema, { jobId: "j-1", state: JobState.FAILED, error: "boom" });
    expect(exitCodeFor(new JobFailedError(failed))).toBe(1);
    expect(exitCodeFor(new Error("downloading x failed: HTTP 403"))).toBe(3);
    expect(exitCodeFor(Object.assign(new Error("ENOSPC"), { code: "ENOSPC" }))).toBe(3);
    expect(EXIT.INTERRUPTED).toBe(130);
  });

  it("tells gRPC errors from other errors with a numeric code", () => {
    expect(isGrpcError(grpcError(status.NOT_FOUND, "x"))).toBe(true);
    expect(isGrpcError(Object.assign(new Error("x"), { code: 5 }))).toBe(false);
    expect(isGrpcError(Object.assign(new Error("x"), { code: "ENOENT" }))).toBe(false);
    expect(isGrpcError(null)).toBe(false);
  });

  it("describes gRPC errors by their details and status name, with the gateway's retry hint", () => {
    expect(describeError(grpcError(status.NOT_FOUND, "job x does not exist"))).toBe("job x does not exist (NOT_FOUND)");
    const m = new Metadata();
    m.set("retry-after-ms", "2500");
    expect(describeError(grpcError(status.RESOURCE_EXHAUSTED, "the farm is full", m))).toBe(
      "the farm is full (RESOURCE_EXHAUSTED; retry in 2.5 s)",
    );
    expect(describeError(new UsageError("--size: bad"))).toBe("--size: bad");
  });
});
