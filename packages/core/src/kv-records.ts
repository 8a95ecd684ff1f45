import type { KV } from "@nats-io/kv";

/** True for the KV errors of a lost optimistic-concurrency race (a create on an existing key, a stale revision). */
export function isRevisionConflict(err: unknown): boolean {
  return /wrong last sequence|key exists/i.test(String(err));
}

/**
 * Read-modify-write of one KV record with optimistic concurrency: retries on a revision conflict (several writers
 * may update one record at once). `change` returns undefined to leave the record as it is; missing or deleted
 * records give undefined.
 */
export async function updateRecord<T>(
  kv: KV,
  key: string,
  codec: { decode(bytes: Uint8Array): T; encode(value: T): Uint8Array },
  change: (value: T) => T | undefined,
): Promise<T | undefined> {
  for (let attempt = 0; ; attempt++) {
    const entry = await kv.get(key);
    if (!entry || entry.operation !== "PUT" || entry.value.length === 0) return undefined;
    const next = change(codec.decode(entry.value));
    if (!next) return codec.decode(entry.value);
    try {
      await kv.update(key, codec.encode(next), entry.revision);
      return next;
    } catch (err) {
      if (attempt >= 50 || !isRevisionConflict(err)) throw err;
    }
  }
}
