import { describe, expect, it } from "vitest";
import type { ObjectStore } from "@unclip/core";
import { create, BatchItemSchema, GenerateRequestSchema, SubmitBatchRequestSchema } from "@unclip/protocol";
import { BatchItems, MAX_INLINE_ITEMS } from "../src/batch-items.js";
import { itemJobId } from "../src/batch-runner.js";
import { validateBatchId, validateJobId, validateRequestId } from "../src/request-validation.js";

// Inline submissions never touch the store.
const items = new BatchItems({} as ObjectStore);
const item = (customId: string, prompt = "a red circle") =>
  create(BatchItemSchema, { customId, request: { case: "generate", value: create(GenerateRequestSchema, { prompt }) } });

describe("batch submissions", () => {
  it("fingerprints the items, not the batch id, so a resubmission is recognised", async () => {
    const a = await items.read(create(SubmitBatchRequestSchema, { batchId: "one", items: [item("a"), item("b")] }));
    const b = await items.read(create(SubmitBatchRequestSchema, { batchId: "two", items: [item("a"), item("b")] }));
    const c = await items.read(create(SubmitBatchRequestSchema, { batchId: "one", items: [item("a"), item("b", "a blue star")] }));
    expect(a.fingerprint).toBe(b.fingerprint);
    expect(a.fingerprint).not.toBe(c.fingerprint);
  });

  it("refuses empty, oversized and ambiguous submissions and repeated custom ids with a readable message", async () => {
    const read = (fields: Parameters<typeof create<typeof SubmitBatchRequestSchema>>[1]) =>
      items.read(create(SubmitBatchRequestSchema, { batchId: "b", ...fields }));
    await expect(read({})).rejects.toThrow(/the batch is empty/);
    await expect(read({ items: [item("a")], manifestKey: "m.jsonl" })).rejects.toThrow(/not both/);
    await expect(read({ items: [item("a"), item("a")] })).rejects.toThrow(/item 2: custom_id "a" appears twice/);
    await expect(read({ items: [item("")] })).rejects.toThrow(/item 1: custom_id must be 1 to 256 characters/);
    const many = Array.from({ length: MAX_INLINE_ITEMS + 1 }, (_, i) => item(`i${i}`));
    await expect(read({ items: many })).rejects.toThrow(/1001 inline items; the limit is 1000/);
  });

  it("derives item job ids that are valid job ids and differ per batch and index", () => {
    const ids = new Set([itemJobId("b", 0), itemJobId("b", 1), itemJobId("c", 0)]);
    expect(ids.size).toBe(3);
    for (const id of ids) expect(validateJobId(id)).toBe(id);
    expect(itemJobId("b", 0)).toBe(itemJobId("b", 0));
  });

  it("checks batch ids and request ids", () => {
    expect(validateBatchId("nightly_2026-11-30")).toBe("nightly_2026-11-30");
    expect(() => validateBatchId("has space")).toThrow(/batch_id "has space" must be 1 to 128 characters/);
    expect(() => validateBatchId("")).toThrow(/batch_id/);
    expect(validateRequestId("")).toBeUndefined();
    expect(() => validateRequestId("x".repeat(129))).toThrow(/request_id/);
  });
});
