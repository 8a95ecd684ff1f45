import { cp, mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { beforeAll, describe, expect, it } from "vitest";
import { loadBundleTokenizer } from "../src/bundle-tokenizer.js";
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

describe("the ./tokenizer entry (loadBundleTokenizer)", () => {
  it("loads a bundle's tokenizer with the manifest's length, counting as the bundle's own PromptTokenizer does", async () => {
    const tokenizer = await loadBundleTokenizer(TINY_BUNDLE);
    expect([tokenizer.maxLength, tokenizer.padId]).toEqual([16, 0]);
    const direct = await PromptTokenizer.load(path.join(TINY_BUNDLE, "tokenizer.json"), { maxLength: 16, padId: 0 });
    expect(tokenizer.encode(["a Red circle zebra"])).toEqual(direct.encode(["a Red circle zebra"]));
  });

  it("refuses a bundle whose tokenizer.json does not match the manifest's hash", async () => {
    const dir = await mkdtemp(path.join(os.tmpdir(), "bundle-tokenizer-"));
    try {
      await cp(TINY_BUNDLE, dir, { recursive: true });
      await writeFile(path.join(dir, "tokenizer.json"), (await readFile(path.join(dir, "tokenizer.json"), "utf8")) + " ");
      await expect(loadBundleTokenizer(dir)).rejects.toThrow(/tokenizer.json has sha256 [0-9a-f]+, manifest says/);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it("is exported separately and loads no onnxruntime (the gateway imports it)", async () => {
    const pkg = JSON.parse(await readFile(new URL("../package.json", import.meta.url), "utf8"));
    expect(pkg.exports["./tokenizer"]).toBe("./src/bundle-tokenizer.ts");
    const sources = ["bundle-tokenizer.ts", "manifest.ts", "tokenizer.ts"].map((f) =>
      readFile(new URL(`../src/${f}`, import.meta.url), "utf8"),
    );
    const imports = (await Promise.all(sources)).flatMap((source) =>
      [...source.matchAll(/^(?:import|export) .* from "([^"]+)";$/gm)].map((m) => m[1]),
    );
    expect(imports.filter((i) => !i.startsWith("node:") && !i.startsWith("./"))).toEqual(["@huggingface/tokenizers"]);
  });
});
