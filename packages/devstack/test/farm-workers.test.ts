import { describe, expect, it } from "vitest";
import { ConfigError } from "@unclip/core";
import { farmWorkerCounts, parseFarmWorkers } from "../src/farm-workers.js";

describe("UNCLIP_FARM_WORKERS", () => {
  it("reads pool=count pairs; pools it does not name get one worker", () => {
    expect(parseFarmWorkers("prior=1,decoder=3,upscale=2")).toEqual({ prior: 1, decoder: 3, upscale: 2 });
    expect(parseFarmWorkers(" decoder = 4 , ")).toEqual({ decoder: 4 });
    expect(parseFarmWorkers("")).toEqual({});
    expect(parseFarmWorkers(undefined)).toEqual({});
    expect(farmWorkerCounts({})).toEqual({ prior: 1, decoder: 1, upscale: 1 });
    expect(farmWorkerCounts({ UNCLIP_FARM_WORKERS: "decoder=3,upscale=2" })).toEqual({ prior: 1, decoder: 3, upscale: 2 });
  });

  it("lets the workers option win over the variable, pool by pool", () => {
    expect(farmWorkerCounts({ UNCLIP_FARM_WORKERS: "decoder=3,upscale=2" }, { decoder: 1, prior: 2 })).toEqual({
      prior: 2,
      decoder: 1,
      upscale: 2,
    });
  });

  it("refuses bad values with a message that names the variable", () => {
    const cases: [string, RegExp][] = [
      ["decoder", /"decoder" is not pool=count/],
      ["decoder=three", /the decoder count must be an integer from 1 to 32/],
      ["decoder=0", /the decoder count must be an integer from 1 to 32/],
      ["decoder=33", /the decoder count must be an integer from 1 to 32/],
      ["decoder=1.5", /the decoder count must be an integer from 1 to 32/],
      ["decoder=", /the decoder count must be an integer from 1 to 32/],
      ["decoders=2", /unknown pool "decoders"; the pools are prior, decoder, upscale/],
      ["decoder=2,decoder=3", /decoder is named twice/],
      ["decoder=2;upscale=1", /is not pool=count/],
    ];
    for (const [value, message] of cases) {
      expect(() => parseFarmWorkers(value), value).toThrow(ConfigError);
      expect(() => parseFarmWorkers(value), value).toThrow(message);
      expect(() => parseFarmWorkers(value), value).toThrow(`UNCLIP_FARM_WORKERS=${JSON.stringify(value)}: `);
      expect(() => farmWorkerCounts({ UNCLIP_FARM_WORKERS: value }), value).toThrow(/^UNCLIP_FARM_WORKERS=/);
    }
    expect(() => farmWorkerCounts({}, { decoder: 0 })).toThrow(/workers\.decoder=0 must be an integer from 1 to 32/);
    expect(() => farmWorkerCounts({}, { decoder: 2.5 })).toThrow(/workers\.decoder=2\.5/);
    expect(() => farmWorkerCounts({}, { gpu: 1 } as never)).toThrow(/workers\.gpu: unknown pool/);
  });
});
