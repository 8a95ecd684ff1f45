import type { KV } from "@nats-io/kv";
import { FarmError, GrpcStatus, isTerminal, type Logger } from "@unclip/core";
import { fromBinary, JobSchema } from "@unclip/protocol";

interface Open {
  tenant: string;
  /** Images of the job not finished yet. */
  images: number;
  atMs: number;
  /** Seen in the job bucket (not just reserved by an admission still running here). */
  recorded: boolean;
}

/**
 * Per-tenant quotas on images not yet finished (max_queued_images). The count comes from a watch of every record in
 * the job bucket, so it starts right after a restart and includes jobs that other gateways admitted; an admission
 * here reserves its images before its record exists, so two admissions on this gateway cannot both slip under the
 * limit. Two gateways admitting for one tenant at the same moment can pass it by one job each: the watch brings
 * the other's job a few milliseconds later.
 */
export class TenantQuota {
  private readonly jobs = new Map<string, Open>();
  private stopWatch: () => void = () => undefined;

  private constructor(
    private readonly limitOf: (tenant: string) => number | undefined,
    /** Records not updated for this long have expired from the bucket (the KV's max age drops them silently). */
    private readonly ttlMs: number,
  ) {}

  /** Starts watching the job bucket; resolves once the records already there are counted. */
  static async start(kv: KV, limitOf: (tenant: string) => number | undefined, ttlMs: number, log: Logger): Promise<TenantQuota> {
    const quota = new TenantQuota(limitOf, ttlMs);
    const existing = (await kv.status()).values;
    const iter = await kv.watch({});
    quota.stopWatch = () => iter.stop();
    let counted!: () => void;
    const ready = new Promise<void>((resolve) => (counted = resolve));
    if (existing === 0) counted();
    // Records that expire between the count and the watch never arrive: do not wait for them forever.
    const giveUp = setTimeout(() => {
      log.warn("tenant quota: the job bucket's records were not all read in 10 s; counting on with those read");
      counted();
    }, 10_000);
    void (async () => {
      try {
        for await (const entry of iter) {
          quota.observe(entry.key, entry.operation === "PUT" ? entry.value : undefined);
          if (entry.delta === 0) counted();
        }
      } catch (err) {
        log.error({ err }, "tenant quota: the job bucket watch ended; quotas count only this gateway's admissions");
      }
    })();
    await ready;
    clearTimeout(giveUp);
    return quota;
  }

  stop(): void {
    this.stopWatch();
  }

  /**
   * Reserves `images` for the tenant's job; throws RESOURCE_EXHAUSTED when they would pass its quota. Returns the
   * undo for an admission that failed before its record was written. A job admitted again (same id) counts once.
   */
  reserve(tenant: string, jobId: string, images: number): () => void {
    const limit = this.limitOf(tenant);
    if (limit !== undefined) {
      const used = this.openImages(tenant, jobId);
      if (used + images > limit) {
        throw new FarmError(
          GrpcStatus.RESOURCE_EXHAUSTED,
          `tenant ${tenant} has ${used} image(s) queued or rendering; ${images} more would pass its quota of ${limit} (max_queued_images): retry when some have finished`,
        );
      }
    }
    if (!this.jobs.get(jobId)?.recorded) this.jobs.set(jobId, { tenant, images, atMs: Date.now(), recorded: false });
    return () => {
      if (this.jobs.get(jobId)?.recorded === false) this.jobs.delete(jobId);
    };
  }

  /** Images of the tenant's jobs (other than `except`) not finished yet. */
  openImages(tenant: string, except = ""): number {
    const since = Date.now() - this.ttlMs;
    let n = 0;
    for (const [jobId, j] of this.jobs) if (j.tenant === tenant && jobId !== except && j.atMs >= since) n += j.images;
    return n;
  }

  private observe(jobId: string, value: Uint8Array | undefined): void {
    if (!value || value.length === 0) {
      this.jobs.delete(jobId);
      return;
    }
    const job = fromBinary(JobSchema, value);
    if (isTerminal(job) || job.tenant === "") this.jobs.delete(jobId);
    else {
      const images = Math.max(0, job.numImages - job.images.length);
      this.jobs.set(jobId, { tenant: job.tenant, images, atMs: Number(job.updatedAtMs), recorded: true });
    }
  }
}
