import { createHash } from "node:crypto";
import { mkdir, rename, stat, writeFile } from "node:fs/promises";
import path from "node:path";
import { status } from "@grpc/grpc-js";
import { JobState, toJsonString, BatchItemResultSchema, type Batch, type BatchItemResult } from "@unclip/protocol";
import type { UnclipClient } from "./client.js";

export interface BatchDownload {
  items: number;
  succeeded: number;
  /** Items that ended without images: failed or cancelled. */
  failed: { customId: string; state: string; error: string }[];
  /** Items that have not ended yet. */
  pending: number;
  /** Images written now. */
  downloaded: number;
  /** Images already on disk from an earlier run. */
  present: number;
  /** One line per image or job that could not be fetched. */
  errors: string[];
  resultsFile: string;
}

/**
 * Writes a batch's images as <outDir>/<custom_id>/<index>.png (custom_id made safe for the file system, see
 * safeFileName) and its results manifest as <outDir>/results.jsonl: the gateway's (results_url) once the batch has
 * ended, else one line per item built from ListBatchItems. Images already on disk are kept, so a rerun resumes.
 * Fresh image URLs come from GetJob.
 */
export async function downloadBatchResults(
  client: UnclipClient,
  batch: Batch,
  outDir: string,
  opts: { concurrency?: number; onItem?: () => void } = {},
): Promise<BatchDownload> {
  await mkdir(outDir, { recursive: true });
  const result: BatchDownload = {
    items: 0,
    succeeded: 0,
    failed: [],
    pending: 0,
    downloaded: 0,
    present: 0,
    errors: [],
    resultsFile: path.join(outDir, "results.jsonl"),
  };
  const lines: string[] = [];
  const running = new Set<Promise<void>>();
  for await (const item of client.batchItems(batch.batchId, 1000, { timeoutMs: 60_000 })) {
    result.items++;
    if (!batch.resultsUrl) lines.push(toJsonString(BatchItemResultSchema, item, { useProtoFieldName: true }));
    if (item.state === JobState.SUCCEEDED) result.succeeded++;
    else if (item.state === JobState.FAILED || item.state === JobState.CANCELLED) {
      result.failed.push({ customId: item.customId, state: JobState[item.state]!.toLowerCase(), error: item.error });
    } else result.pending++;
    if (item.state !== JobState.SUCCEEDED) continue;
    const task = fetchItem(client, item, outDir, result)
      .catch((err: Error & { details?: string }) => void result.errors.push(`${item.customId}: ${err.details ?? err.message}`))
      .finally(() => (running.delete(task), opts.onItem?.()));
    running.add(task);
    if (running.size >= (opts.concurrency ?? 8)) await Promise.race(running);
  }
  await Promise.all(running);
  const manifest = batch.resultsUrl
    ? Buffer.from(await retry(() => download(batch.resultsUrl)))
    : lines.join("\n") + (lines.length ? "\n" : "");
  await writeFile(`${result.resultsFile}.partial`, manifest);
  await rename(`${result.resultsFile}.partial`, result.resultsFile);
  return result;
}

async function fetchItem(client: UnclipClient, item: BatchItemResult, outDir: string, result: BatchDownload): Promise<void> {
  const dir = path.join(outDir, safeFileName(item.customId));
  const wanted = item.images.map((image) => ({ index: image.index, file: path.join(dir, `${image.index}.png`) }));
  const missing = (await Promise.all(wanted.map(async (w) => ((await isFile(w.file)) ? [] : [w])))).flat();
  result.present += wanted.length - missing.length;
  if (missing.length === 0 && wanted.length > 0) return;
  const job = await retry(() => client.getJob(item.jobId, { timeoutMs: 30_000 }));
  await mkdir(dir, { recursive: true });
  for (const image of job.images) {
    const file = path.join(dir, `${image.index}.png`);
    if (await isFile(file)) continue;
    const bytes = image.png.length > 0 ? image.png : await retry(() => download(image.url));
    await writeFile(`${file}.partial`, bytes);
    await rename(`${file}.partial`, file);
    result.downloaded++;
  }
}

/**
 * A custom_id as a directory name: kept when it is already made of A-Z a-z 0-9 . _ - (and does not start with a dot);
 * otherwise the other characters become `_` and a hash of the original follows, so two ids never share a directory.
 */
export function safeFileName(customId: string): string {
  if (/^[A-Za-z0-9_-][A-Za-z0-9._-]{0,99}$/.test(customId)) return customId;
  const clean = customId
    .replace(/[^A-Za-z0-9._-]/g, "_")
    .replace(/^\./, "_")
    .slice(0, 80);
  return `${clean}-${createHash("sha256").update(customId).digest("hex").slice(0, 10)}`;
}

async function isFile(file: string): Promise<boolean> {
  return stat(file).then(
    (s) => s.isFile() && s.size > 0,
    () => false,
  );
}

async function download(url: string): Promise<Uint8Array> {
  const res = await fetch(url);
  if (!res.ok) throw new Error(`downloading ${url.split("?")[0]} failed: HTTP ${res.status}`);
  return new Uint8Array(await res.arrayBuffer());
}

/** gRPC codes worth another try: UNAVAILABLE, DEADLINE_EXCEEDED, RESOURCE_EXHAUSTED. */
const TRANSIENT = new Set([status.UNAVAILABLE, status.DEADLINE_EXCEEDED, status.RESOURCE_EXHAUSTED]);

/** Three tries, 0.5 s then 1 s apart: a restarting gateway or object store should not cost a whole download. */
async function retry<T>(fn: () => Promise<T>): Promise<T> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await fn();
    } catch (err) {
      const code = (err as { code?: unknown }).code;
      if (attempt >= 3 || (typeof code === "number" && !TRANSIENT.has(code))) throw err;
      await new Promise((r) => setTimeout(r, 500 * attempt));
    }
  }
}
