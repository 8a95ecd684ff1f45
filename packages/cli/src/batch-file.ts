import { createHash } from "node:crypto";
import { readFile } from "node:fs/promises";
import {
  create,
  fromJsonString,
  toBinary,
  toJsonString,
  BatchItemSchema,
  GenerateRequestSchema,
  SubmitBatchRequestSchema,
  type BatchItem,
  type SamplingOptions,
} from "@unclip/protocol";
import { UsageError } from "./cli-args.js";

/** Items SubmitBatch takes inline; larger batches go through a manifest in the farm's bucket (manifest_key). */
export const MAX_INLINE_ITEMS = 1000;
/** What the gateway accepts as a batch id. */
export const BATCH_ID = /^[A-Za-z0-9_-]{1,128}$/;

/** What every item of a prompts file asks for. */
export interface PromptDefaults {
  numImages: number;
  size: number;
  /** Seed of each item's first image; 0 = random. */
  seed: bigint;
  sampling?: SamplingOptions;
}

/**
 * A prompts file: one prompt per line; blank lines and lines starting with `#` are skipped. Each prompt becomes a
 * generate item named `line-<n>` after its 1-based line number, so editing comments elsewhere keeps the names.
 */
export function parsePrompts(text: string, defaults: PromptDefaults): BatchItem[] {
  const items: BatchItem[] = [];
  text.split(/\r?\n/).forEach((raw, i) => {
    const prompt = raw.trim();
    if (!prompt || prompt.startsWith("#")) return;
    const generate = create(GenerateRequestSchema, { prompt, ...defaults });
    items.push(create(BatchItemSchema, { customId: `line-${i + 1}`, request: { case: "generate", value: generate } }));
  });
  return items;
}

/** A JSONL file: one BatchItem in protobuf JSON per line (blank lines skipped); each needs a unique custom_id and a request. */
export function parseItemsJsonl(text: string): BatchItem[] {
  const items: BatchItem[] = [];
  const seen = new Map<string, number>();
  text.split(/\r?\n/).forEach((raw, i) => {
    const line = raw.trim();
    if (!line) return;
    let item: BatchItem;
    try {
      item = fromJsonString(BatchItemSchema, line);
    } catch (err) {
      throw new UsageError(`line ${i + 1}: not a BatchItem in protobuf JSON: ${(err as Error).message}`);
    }
    if (!item.customId) throw new UsageError(`line ${i + 1}: the item has no custom_id`);
    if (item.request.case === undefined) throw new UsageError(`line ${i + 1}: the item has no generate, variations or edit request`);
    const first = seen.get(item.customId);
    if (first !== undefined)
      throw new UsageError(`line ${i + 1}: custom_id ${JSON.stringify(item.customId)} is already used on line ${first}`);
    seen.set(item.customId, i + 1);
    items.push(item);
  });
  return items;
}

/** Whether a batch file is JSONL (by its extension: .jsonl or .ndjson) rather than a prompts file. */
export const isJsonlFile = (file: string): boolean => /\.(jsonl|ndjson)$/i.test(file);

/** Reads a prompts file or an items JSONL file (see isJsonlFile) into batch items. */
export async function readBatchFile(file: string, defaults: PromptDefaults): Promise<BatchItem[]> {
  let text: string;
  try {
    text = await readFile(file, "utf8");
  } catch (err) {
    throw new UsageError(`cannot read ${file}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
  }
  const items = isJsonlFile(file) ? parseItemsJsonl(text) : parsePrompts(text, defaults);
  if (items.length === 0) throw new UsageError(`${file} has no items`);
  return items;
}

/**
 * The default batch id of a list of items: `b-` and the first 24 hex digits of the SHA-256 of the items' protobuf
 * encoding. The same file with the same options is the same batch, so a rerun resumes it instead of starting over.
 */
export function defaultBatchId(items: readonly BatchItem[]): string {
  return `b-${sha256(toBinary(SubmitBatchRequestSchema, create(SubmitBatchRequestSchema, { items: [...items] }))).slice(0, 24)}`;
}

/** The default batch id of a manifest already in the bucket: derived from its key. */
export function manifestBatchId(manifestKey: string): string {
  return `b-${sha256(`manifest:${manifestKey}`).slice(0, 24)}`;
}

/** Items as JSONL, one BatchItem in protobuf JSON per line: the manifest format. */
export function itemsToJsonl(items: readonly BatchItem[]): string {
  return items.map((item) => toJsonString(BatchItemSchema, item)).join("\n") + "\n";
}

const sha256 = (data: string | Uint8Array) => createHash("sha256").update(data).digest("hex");
