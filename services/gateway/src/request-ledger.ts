import { createHash } from "node:crypto";
import type { KV } from "@nats-io/kv";
import { FarmError, GrpcStatus, isRevisionConflict } from "@unclip/core";
import { create, fromBinary, toBinary, RequestRecordSchema, type RequestRecord } from "@unclip/protocol";

/**
 * A claim whose job record has not appeared this long after the claim was made belongs to a gateway that died before
 * writing it. Once the record exists the claim is never taken over: a gateway that died later, with tasks still to
 * publish, leaves its admission to the reconciler (job-reconciler.ts), and a retry follows that job.
 */
const ORPHAN_AFTER_MS = 10_000;

export const sha256 = (bytes: Uint8Array | string): string => createHash("sha256").update(bytes).digest("hex");

/**
 * Idempotency keys (request_id) in the KV bucket farm_requests, which lives as long as job records. The first call
 * with a key claims it for its job with a KV create, which only one caller can win; every later call with the same
 * key and the same parameters gets that job, and one with other parameters gets ALREADY_EXISTS.
 */
export class RequestLedger {
  constructor(
    private readonly kv: KV,
    /** True once the job's record exists. */
    private readonly jobRecorded: (jobId: string) => Promise<boolean>,
  ) {}

  /**
   * Claims `requestId` for `jobId`. Returns the job that already holds the key, or undefined when this call won
   * and must admit `jobId`. A claim left by a gateway that died before admitting its job is taken over.
   */
  async claim(requestId: string, fingerprint: string, jobId: string): Promise<string | undefined> {
    const key = sha256(requestId);
    const record = create(RequestRecordSchema, { jobId, fingerprint, createdAtMs: BigInt(Date.now()) });
    for (;;) {
      try {
        await this.kv.create(key, toBinary(RequestRecordSchema, record));
        return undefined;
      } catch (err) {
        if (!isRevisionConflict(err)) throw err;
      }
      const entry = await this.kv.get(key);
      if (!entry || entry.operation !== "PUT" || entry.value.length === 0) continue;
      const held: RequestRecord = fromBinary(RequestRecordSchema, entry.value);
      if (held.fingerprint !== fingerprint) {
        throw new FarmError(
          GrpcStatus.ALREADY_EXISTS,
          `request_id ${JSON.stringify(requestId)} was already used for job ${held.jobId} with other parameters`,
        );
      }
      if (await this.waitForJob(held)) return held.jobId;
      try {
        await this.kv.update(key, toBinary(RequestRecordSchema, record), entry.revision);
        return undefined;
      } catch (err) {
        // Another retry took the orphaned claim over first: follow its job.
        if (!isRevisionConflict(err)) throw err;
      }
    }
  }

  /** Gives a claim back when its job could not be admitted (e.g. RESOURCE_EXHAUSTED), so that a retry can run it. */
  async release(requestId: string, jobId: string): Promise<void> {
    const key = sha256(requestId);
    const entry = await this.kv.get(key);
    if (entry?.operation === "PUT" && entry.value.length > 0 && fromBinary(RequestRecordSchema, entry.value).jobId === jobId) {
      await this.kv.delete(key, { previousSeq: entry.revision }).catch(() => undefined);
    }
  }

  /** True once the claim's job has its record; false when the claim is orphaned. */
  private async waitForJob(held: RequestRecord): Promise<boolean> {
    for (;;) {
      if (await this.jobRecorded(held.jobId)) return true;
      if (Date.now() - Number(held.createdAtMs) > ORPHAN_AFTER_MS) return false;
      await new Promise((r) => setTimeout(r, 100));
    }
  }
}
