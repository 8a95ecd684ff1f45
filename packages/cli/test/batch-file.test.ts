import { describe, expect, it } from "vitest";
import { create, toJsonString, BatchItemSchema, GenerateRequestSchema, SamplingOptionsSchema } from "@unclip/protocol";
import { defaultBatchId, isJsonlFile, itemsToJsonl, manifestBatchId, parseItemsJsonl, parsePrompts, BATCH_ID } from "../src/batch-file.js";
import { safeFileName } from "../src/batch-download.js";
import { formatEta } from "../src/batch-progress.js";
import { UsageError } from "../src/cli-args.js";

const defaults = { numImages: 2, size: 64, seed: 7n, sampling: create(SamplingOptionsSchema, { priorSteps: 4 }) };

describe("prompts files", () => {
  it("makes one generate item per prompt, named after its line, skipping blanks and comments", () => {
    const items = parsePrompts("# shapes\na red circle\n\n   \n  a green star  \r\n# done\nblue square", defaults);
    expect(items.map((i) => i.customId)).toEqual(["line-2", "line-5", "line-7"]);
    const first = items[0]!.request;
    expect(first.case).toBe("generate");
    expect(first.case === "generate" && first.value).toMatchObject({ prompt: "a red circle", numImages: 2, size: 64, seed: 7n });
    expect(first.case === "generate" && first.value.sampling?.priorSteps).toBe(4);
    expect(items[1]!.request.value).toMatchObject({ prompt: "a green star" });
  });

  it("is empty for a file of comments", () => {
    expect(parsePrompts("# nothing\n\n", defaults)).toEqual([]);
  });
});

describe("items JSONL", () => {
  const line = (customId: string, prompt = "a cat") =>
    toJsonString(
      BatchItemSchema,
      create(BatchItemSchema, { customId, request: { case: "generate", value: create(GenerateRequestSchema, { prompt, size: 64 }) } }),
    );

  it("reads BatchItems in protobuf JSON, proto or JSON field names, skipping blank lines", () => {
    const text = `${line("a")}\n\n{"custom_id":"b","edit":{"prompt":"a star","image":"AAAA","mask":"AAAA"}}\n`;
    const items = parseItemsJsonl(text);
    expect(items.map((i) => [i.customId, i.request.case])).toEqual([
      ["a", "generate"],
      ["b", "edit"],
    ]);
    expect(parseItemsJsonl(itemsToJsonl(items))).toEqual(items);
  });

  it("names the line of a bad item", () => {
    expect(() => parseItemsJsonl(`${line("a")}\n{"custom_id":"b","generate":{"prompt":"x","colour":"red"}}`)).toThrow(
      /^line 2: not a BatchItem/,
    );
    expect(() => parseItemsJsonl(`${line("a")}\nnot json`)).toThrow(UsageError);
    expect(() => parseItemsJsonl(`{"generate":{"prompt":"x"}}`)).toThrow("line 1: the item has no custom_id");
    expect(() => parseItemsJsonl(`{"custom_id":"x"}`)).toThrow("line 1: the item has no generate, variations or edit request");
    expect(() => parseItemsJsonl(`${line("a")}\n${line("b")}\n${line("a", "a dog")}`)).toThrow(
      'line 3: custom_id "a" is already used on line 1',
    );
  });

  it("is told from a prompts file by its extension", () => {
    expect([isJsonlFile("x.jsonl"), isJsonlFile("x.NDJSON"), isJsonlFile("prompts.txt"), isJsonlFile("jsonl")]).toEqual([
      true,
      true,
      false,
      false,
    ]);
  });
});

describe("batch ids", () => {
  it("are the same for the same items and differ when the items or their settings do", () => {
    const a = defaultBatchId(parsePrompts("a red circle\na green star", defaults));
    expect(a).toMatch(/^b-[0-9a-f]{24}$/);
    expect(BATCH_ID.test(a)).toBe(true);
    expect(defaultBatchId(parsePrompts("# a comment\na red circle\na green star", defaults))).not.toBe(a); // line numbers moved
    expect(defaultBatchId(parsePrompts("a red circle\na green star\n", defaults))).toBe(a);
    expect(defaultBatchId(parsePrompts("a red circle\na green star", { ...defaults, size: 256 }))).not.toBe(a);
    expect(manifestBatchId("in/a.jsonl")).toMatch(/^b-[0-9a-f]{24}$/);
    expect(manifestBatchId("in/a.jsonl")).not.toBe(manifestBatchId("in/b.jsonl"));
  });
});

describe("result directories", () => {
  it("keep safe custom ids and make the others safe and distinct", () => {
    expect(safeFileName("line-12")).toBe("line-12");
    expect(safeFileName("item_3.v2")).toBe("item_3.v2");
    for (const id of ["../etc", "a/b", "a_b?", ".", "..", "", "日本", "x".repeat(300)]) {
      const name = safeFileName(id);
      expect(name).toMatch(/^[A-Za-z0-9_-][A-Za-z0-9._-]*$/);
      expect(name.length).toBeLessThanOrEqual(100);
    }
    expect(safeFileName("a/b")).not.toBe(safeFileName("a?b"));
    expect(safeFileName("a/b")).not.toBe("a_b");
  });
});

describe("ETA", () => {
  it("reads as seconds, minutes or hours", () => {
    expect([formatEta(0), formatEta(4.2), formatEta(65), formatEta(7322)]).toEqual([
      "ETA unknown",
      "ETA 5 s",
      "ETA 1 m 05 s",
      "ETA 2 h 02 m",
    ]);
  });
});
