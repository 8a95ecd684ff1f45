import { FarmError, type ObjectStore } from "@unclip/core";
import {
  create,
  fromJsonString,
  toBinary,
  toJsonString,
  BatchItemSchema,
  SubmitBatchRequestSchema,
  type BatchItem,
  type SubmitBatchRequest,
} from "@unclip/protocol";
import { sha256 } from "./request-ledger.js";

export const MAX_INLINE_ITEMS = 1_000;
export const MAX_MANIFEST_ITEMS = 100_000;
/** Parsed item lists kept in memory, for the batches this gateway drives or lists. */
const CACHED_BATCHES = 16;

export const itemsKey = (batchId: string, fingerprint: string) => `batches/${batchId}/items-${fingerprint.slice(0, 16)}.jsonl`;
export const resultsKey = (batchId: string) => `batches/${batchId}/results.jsonl`;

/**
 * A batch's items: checked and fingerprinted at submission, stored as one JSONL object (one BatchItem in protobuf
 * JSON per line) before the batch record points at it, and read back by whichever gateway drives or lists the batch.
 * The requests themselves are checked item by item when they run, so one bad item fails alone.
 */
export class BatchItems {
  private readonly cache = new Map<string, BatchItem[]>();

  constructor(private readonly store: ObjectStore) {}

  /** The submission's items and the fingerprint that tells a resubmission from a conflicting one. */
  async read(req: SubmitBatchRequest): Promise<{ items: BatchItem[]; fingerprint: string }> {
    if (req.items.length > 0 && req.manifestKey) throw FarmError.invalid("give items or manifest_key, not both");
    if (req.items.length > 0) {
      if (req.items.length > MAX_INLINE_ITEMS) {
        throw FarmError.invalid(`${req.items.length} inline items; the limit is ${MAX_INLINE_ITEMS} (use a manifest_key for more)`);
      }
      checkCustomIds(req.items, (i) => `item ${i + 1}`);
      const fingerprint = sha256(toBinary(SubmitBatchRequestSchema, create(SubmitBatchRequestSchema, { items: req.items })));
      return { items: req.items, fingerprint };
    }
    if (!req.manifestKey) throw FarmError.invalid("the batch is empty: give items or a manifest_key");
    let text: string;
    try {
      text = (await this.store.get(req.manifestKey)).toString("utf8");
    } catch (err) {
      if ((err as { code?: string }).code === "NoSuchKey" || /not ?found|does not exist/i.test(String(err)))
        throw FarmError.invalid(`manifest_key ${JSON.stringify(req.manifestKey)} does not exist in the bucket`);
      throw err;
    }
    const items = parseJsonl(text);
    return { items, fingerprint: sha256(`manifest:${req.manifestKey}:${sha256(text)}`) };
  }

  async write(key: string, items: BatchItem[]): Promise<void> {
    const text = items.map((item) => toJsonString(BatchItemSchema, item)).join("\n") + "\n";
    await this.store.put(key, Buffer.from(text), "application/jsonl");
    this.remember(key, items);
  }

  async load(key: string): Promise<BatchItem[]> {
    const cached = this.cache.get(key);
    if (cached) return cached;
    const items = parseJsonl((await this.store.get(key)).toString("utf8"));
    this.remember(key, items);
    return items;
  }

  private remember(key: string, items: BatchItem[]): void {
    this.cache.delete(key);
    this.cache.set(key, items);
    if (this.cache.size > CACHED_BATCHES) this.cache.delete(this.cache.keys().next().value!);
  }
}

function parseJsonl(text: string): BatchItem[] {
  const items: BatchItem[] = [];
  const lines = text.split("\n");
  for (let n = 0; n < lines.length; n++) {
    const line = lines[n]!.trim();
    if (line === "") continue;
    if (items.length >= MAX_MANIFEST_ITEMS) throw FarmError.invalid(`the manifest has more than ${MAX_MANIFEST_ITEMS} items`);
    try {
      items.push(fromJsonString(BatchItemSchema, line));
    } catch (err) {
      throw FarmError.invalid(`manifest line ${n + 1} is not a BatchItem in protobuf JSON: ${(err as Error).message}`);
    }
  }
  if (items.length === 0) throw FarmError.invalid("the manifest holds no items");
  checkCustomIds(items, (i) => `manifest item ${i + 1}`);
  return items;
}

function checkCustomIds(items: BatchItem[], where: (i: number) => string): void {
  const seen = new Set<string>();
  items.forEach((item, i) => {
    if (!item.customId || [...item.customId].length > 256) throw FarmError.invalid(`${where(i)}: custom_id must be 1 to 256 characters`);
    if (seen.has(item.customId)) throw FarmError.invalid(`${where(i)}: custom_id ${JSON.stringify(item.customId)} appears twice`);
    seen.add(item.customId);
  });
}
