import type { KV } from "@nats-io/kv";
import { isRevisionConflict, updateRecord } from "@unclip/core";
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

const RECORD_CODEC = {
  decode: (b: Uint8Array) => fromBinary(BatchRecordSchema, b),
  encode: (r: BatchRecord) => toBinary(BatchRecordSchema, r),
};

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
      if (isRevisionConflict(err)) return false;
      throw err;
    }
  }

  async get(batchId: string): Promise<BatchRecord | undefined> {
    const entry = await this.records.get(batchId);
    if (!entry || entry.operation !== "PUT" || entry.value.length === 0) return undefined;
    return RECORD_CODEC.decode(entry.value);
  }

  /**
   * Read-modify-write with optimistic concurrency (the runner and CancelBatch may write at once). `change` returns
   * undefined to leave the record as it is.
   */
  async update(batchId: string, change: (r: BatchRecord) => BatchRecord | undefined): Promise<BatchRecord | undefined> {
    return updateRecord(this.records, batchId, RECORD_CODEC, (record) => {
      const next = change(record);
      if (next) next.batch!.updatedAtMs = BigInt(Date.now());
      return next;
    });
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
}
