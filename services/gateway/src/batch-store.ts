import type { KV } from "@nats-io/kv";
import {
  fromBinary,
  toBinary,
  BatchItemResultSchema,
  BatchRecordSchema,
  BatchState,
  type BatchItemResult,
  type BatchRecord,
} from "@unclip/protocol";

export const BATCH_BUCKET = "farm_batches";
export const BATCH_ITEM_BUCKET = "farm_batch_items";

const isConflict = (err: unknown) => /wrong last sequence|key exists/i.test(String(err));

/**
 * Batches in JetStream KV: one BatchRecord per batch in farm_batches (key: batch id), and one BatchItemResult per
 * submitted item in farm_batch_items (key: <batch id>.<index>). Nothing about a batch lives only in a gateway.
 */
export class BatchStore {
  constructor(
    private readonly records: KV,
    private readonly items: KV,
  ) {}

  /** Creates the record; false when a batch with that id exists (only one concurrent creator can win). */
  async create(record: BatchRecord): Promise<boolean> {
    try {
      await this.records.create(record.batch!.batchId, toBinary(BatchRecordSchema, record));
      return true;
    } catch (err) {
      if (isConflict(err)) return false;
      throw err;
    }
  }

  async get(batchId: string): Promise<BatchRecord | undefined> {
    return (await this.entry(batchId))?.record;
  }

  /**
   * Read-modify-write with optimistic concurrency (the runner and CancelBatch may write at once). `change` returns
   * undefined to leave the record as it is.
   */
  async update(batchId: string, change: (r: BatchRecord) => BatchRecord | undefined): Promise<BatchRecord | undefined> {
    for (let attempt = 0; ; attempt++) {
      const entry = await this.entry(batchId);
      if (!entry) return undefined;
      const next = change(entry.record);
      if (!next) return entry.record;
      next.batch!.updatedAtMs = BigInt(Date.now());
      try {
        await this.records.update(batchId, toBinary(BatchRecordSchema, next), entry.revision);
        return next;
      } catch (err) {
        if (attempt >= 50 || !isConflict(err)) throw err;
      }
    }
  }

  /** Ids of the batches still running. */
  async running(): Promise<string[]> {
    const ids: string[] = [];
    for await (const key of await this.records.keys()) {
      const record = await this.get(key);
      if (record?.batch?.state === BatchState.RUNNING) ids.push(key);
    }
    return ids;
  }

  async putItem(batchId: string, index: number, result: BatchItemResult): Promise<void> {
    await this.items.put(`${batchId}.${index}`, toBinary(BatchItemResultSchema, result));
  }

  async getItem(batchId: string, index: number): Promise<BatchItemResult | undefined> {
    const entry = await this.items.get(`${batchId}.${index}`);
    if (!entry || entry.operation !== "PUT" || entry.value.length === 0) return undefined;
    return fromBinary(BatchItemResultSchema, entry.value);
  }

  private async entry(batchId: string): Promise<{ record: BatchRecord; revision: number } | undefined> {
    const entry = await this.records.get(batchId);
    if (!entry || entry.operation !== "PUT" || entry.value.length === 0) return undefined;
    return { record: fromBinary(BatchRecordSchema, entry.value), revision: entry.revision };
  }
}
