import path from "node:path";
import { beforeAll, describe, expect, it } from "vitest";
import { PromptTokenizer, PromptTooLongError } from "../src/tokenizer.js";
import { TINY_BUNDLE } from "./helpers.js";

describe("PromptTokenizer (tiny-random tokenizer.json)", () => {
  let tokenizer: PromptTokenizer;
  beforeAll(async () => {
    tokenizer = await PromptTokenizer.load(path.join(TINY_BUNDLE, "tokenizer.json"), { maxLength: 16, padId: 0 });
  });

  it("lowercases, splits on whitespace and pads to L with padId", () => {
    const { inputIds, attentionMask, count, length } = tokenizer.encode(["A Red circle", ""]);
    expect([count, length]).toEqual([2, 16]);
    expect(inputIds.length).toBe(32);
    const ids = Array.from(inputIds.subarray(0, 16), Number);
    expect(ids.slice(0, 3).every((id) => id > 1)).toBe(true);
    expect(ids.slice(3)).toEqual(new Array(13).fill(0));
    expect(Array.from(attentionMask.subarray(0, 16))).toEqual([1, 1, 1, ...new Array(13).fill(0)]);
    expect(Array.from(inputIds.subarray(16), Number)).toEqual(new Array(16).fill(0));
    expect(Array.from(attentionMask.subarray(16))).toEqual(new Array(16).fill(0));
    expect(tokenizer.encode(["red"]).inputIds[0]).toBe(tokenizer.encode(["RED"]).inputIds[0]);
  });

  it("maps unknown words to [UNK] (id 1)", () => {
    const { inputIds, attentionMask } = tokenizer.encode(["zebra red"]);
    expect(Number(inputIds[0])).toBe(1);
    expect(Number(inputIds[1])).toBeGreaterThan(1);
    expect(attentionMask[0]).toBe(1);
  });

  it("accepts exactly L tokens and refuses more with a readable PromptTooLongError", () => {
    expect(() => tokenizer.encode([new Array(16).fill("red").join(" ")])).not.toThrow();
    const long = new Array(17).fill("blue").join(" ");
    expect(() => tokenizer.encode(["red", long])).toThrow(PromptTooLongError);
    expect(() => tokenizer.encode([long])).toThrow(/17 tokens long; this model reads at most 16/);
  });
});
