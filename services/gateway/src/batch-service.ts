import { FarmError, GrpcStatus, type JobStore, type ObjectStore } from "@unclip/core";
import {
  create,
  clone,
  BatchItemResultSchema,
  BatchRecordSchema,
  BatchSchema,
  BatchState,
  JobState,
  ListBatchItemsResponseSchema,
  type Batch,
  type BatchRecord,
  type CancelBatchRequest,
  type GetBatchRequest,
  type ListBatchItemsRequest,
  type ListBatchItemsResponse,
  type SubmitBatchRequest,
} from "@unclip/protocol";
import { itemsKey, resultsKey, type BatchItems } from "./batch-items.js";
import { itemJobId, type BatchRunner } from "./batch-runner.js";
import type { BatchStore } from "./batch-store.js";
import { validateBatchId } from "./request-validation.js";
import type { Caller, TenantAuth } from "./tenant-auth.js";

const DEFAULT_PAGE = 100;
const MAX_PAGE = 1_000;

/**
 * SubmitBatch, GetBatch, ListBatchItems and CancelBatch: the records are in BatchStore, the work in BatchRunner. A
 * batch belongs to the tenant that submitted it; to any other it does not exist.
 */
export class BatchService {
  constructor(
    private readonly batches: BatchStore,
    private readonly items: BatchItems,
    private readonly runner: BatchRunner,
    private readonly jobs: JobStore,
    private readonly store: ObjectStore,
    private readonly auth: TenantAuth,
    /** Lifetime of the results manifest's presigned URL (1 h, or UNCLIP_URL_TTL_MAX_S if shorter). */
    private readonly resultsUrlTtlS: number,
  ) {}

  async submit(req: SubmitBatchRequest, caller: Caller): Promise<Batch> {
    const batchId = validateBatchId(req.batchId);
    if (req.manifestKey && caller.tenant) checkManifestKey(req.manifestKey, caller.tenant);
    const { items, fingerprint } = await this.items.read(req);
    const existing = await this.batches.get(batchId);
    if (existing) return this.resubmitted(existing, fingerprint, caller);
    const key = itemsKey(batchId, fingerprint);
    // The items are in the store before the record points at them, so a gateway dying here leaves no broken batch.
    await this.items.write(key, items);
    const now = BigInt(Date.now());
    const record = create(BatchRecordSchema, {
      batch: create(BatchSchema, { batchId, state: BatchState.RUNNING, total: items.length, createdAtMs: now, updatedAtMs: now }),
      itemsKey: key,
      fingerprint,
      tenant: caller.tenant,
    });
    if (!(await this.batches.create(record))) return this.resubmitted((await this.batches.get(batchId))!, fingerprint, caller);
    void this.runner.tick();
    return this.view(record);
  }

  async get(req: GetBatchRequest, caller: Caller): Promise<Batch> {
    return this.view(await this.existing(req.batchId, caller));
  }

  async list(req: ListBatchItemsRequest, caller: Caller): Promise<ListBatchItemsResponse> {
    const record = await this.existing(req.batchId, caller);
    const batchId = record.batch!.batchId;
    if (req.pageSize > MAX_PAGE) throw FarmError.invalid(`page_size is ${req.pageSize}; the limit is ${MAX_PAGE}`);
    const size = req.pageSize || DEFAULT_PAGE;
    const start = req.pageToken === "" ? 0 : Number(req.pageToken);
    if (!Number.isInteger(start) || start < 0 || start > record.batch!.total) {
      throw FarmError.invalid(`page_token ${JSON.stringify(req.pageToken)} is not a token of this batch's pages`);
    }
    const items = await this.items.load(record.itemsKey);
    const end = Math.min(items.length, start + size);
    const page = await Promise.all(
      items.slice(start, end).map(async (item, k) => {
        const index = start + k;
        const result = await this.batches.getItem(batchId, index);
        if (result) return result;
        // Not ended yet: submitted items show their job's state, the others wait (or were cancelled).
        if (index < record.nextIndex) {
          const jobId = itemJobId(batchId, index);
          const job = await this.jobs.get(jobId);
          return create(BatchItemResultSchema, { customId: item.customId, jobId, state: job?.state ?? JobState.QUEUED });
        }
        const ended = record.batch!.state !== BatchState.RUNNING || record.cancelRequested;
        return create(BatchItemResultSchema, { customId: item.customId, state: ended ? JobState.CANCELLED : JobState.QUEUED });
      }),
    );
    return create(ListBatchItemsResponseSchema, { items: page, nextPageToken: end < items.length ? String(end) : "" });
  }

  async cancel(req: CancelBatchRequest, caller: Caller): Promise<Batch> {
    const before = await this.existing(req.batchId, caller);
    if (before.batch!.state !== BatchState.RUNNING) {
      throw new FarmError(
        GrpcStatus.FAILED_PRECONDITION,
        `batch ${before.batch!.batchId} already ended (${BatchState[before.batch!.state]!.toLowerCase()})`,
      );
    }
    const record = await this.batches.update(before.batch!.batchId, (r) => {
      if (r.batch!.state !== BatchState.RUNNING || r.cancelRequested) return undefined;
      r.cancelRequested = true;
      return r;
    });
    void this.runner.tick();
    return this.view(record!);
  }

  /** Another tenant's batch gets the very answer of a missing one, so that ids cannot be probed. */
  private async existing(batchId: string, caller: Caller): Promise<BatchRecord> {
    const record = await this.batches.get(validateBatchId(batchId));
    if (!record || !this.auth.owns(caller, record.tenant)) throw FarmError.notFound(`batch ${batchId} does not exist (or has expired)`);
    return record;
  }

  private resubmitted(existing: BatchRecord, fingerprint: string, caller: Caller): Promise<Batch> {
    // Batch ids are one namespace for the whole farm: another tenant's id is taken, whatever its items.
    if (!this.auth.owns(caller, existing.tenant)) {
      throw new FarmError(GrpcStatus.ALREADY_EXISTS, `batch id ${existing.batch!.batchId} is taken: choose another batch_id`);
    }
    if (existing.fingerprint !== fingerprint) {
      throw new FarmError(GrpcStatus.ALREADY_EXISTS, `batch ${existing.batch!.batchId} already exists with other items`);
    }
    return this.view(existing);
  }

  private async view(record: BatchRecord): Promise<Batch> {
    const batch = clone(BatchSchema, record.batch!);
    const left = batch.total - batch.succeeded - batch.failed - batch.cancelled;
    batch.etaSeconds = batch.state === BatchState.RUNNING && record.ratePerSecond > 0 ? left / record.ratePerSecond : 0;
    if (batch.resultsKey) {
      // As for images: only the batch's own manifest is ever presigned, whatever a damaged record says.
      if (batch.resultsKey !== resultsKey(batch.batchId)) {
        throw new FarmError(GrpcStatus.INTERNAL, `batch ${batch.batchId} refers to results key ${JSON.stringify(batch.resultsKey)}`);
      }
      batch.resultsUrl = await this.store.presign(batch.resultsKey, this.resultsUrlTtlS);
    }
    return batch;
  }
}

/**
 * With API keys, a tenant's manifest must lie under manifests/<tenant>/: the gateway reads it with the farm's own
 * credentials, and must not read (or, through its error messages, show) another tenant's objects for it.
 */
function checkManifestKey(key: string, tenant: string): void {
  const prefix = `manifests/${tenant}/`;
  // Dot segments would be resolved by the HTTP client, out of the prefix.
  if (!key.startsWith(prefix) || key.split("/").some((s) => s === "." || s === "..")) {
    throw FarmError.invalid(`manifest_key ${JSON.stringify(key.slice(0, 200))} must be an object under ${prefix}`);
  }
}
