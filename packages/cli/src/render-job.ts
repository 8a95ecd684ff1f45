import { mkdir, writeFile } from "node:fs/promises";
import path from "node:path";
import { JobState, stageName, type ImageRef, type Job, type JobEvent, type StageTiming } from "@unclip/protocol";

export interface RenderResult {
  job: Job;
  /** Every image the job produced (the 64 px previews and upscales included), as written to disk. */
  files: { index: number; size: number; path: string }[];
  timings: StageTiming[];
  /** Seconds from the request to the terminal event. */
  seconds: number;
}

export class JobFailedError extends Error {
  override name = "JobFailedError";
  constructor(readonly job: Job) {
    super(`job ${job.jobId} ${JobState[job.state]!.toLowerCase()}: ${job.error}`);
  }
}

/**
 * Follows a job's event stream to its end and writes every image it produced under outDir/<jobId>/
 * as <index>-<size>.png: the bytes the events carried (OutputOptions.include_bytes), else downloaded through the
 * presigned URLs the gateway hands out.
 */
export async function renderJob(events: AsyncIterable<JobEvent>, outDir: string, onEvent?: (e: JobEvent) => void): Promise<RenderResult> {
  const started = Date.now();
  const images = new Map<string, ImageRef>();
  // The same image comes more than once (stage_finished, preview or image, the job record); only preview and image
  // events carry its bytes (include_bytes), so a reference with bytes is kept over one without.
  const see = (image: ImageRef) => {
    const key = `${image.index}-${image.size}`;
    if (image.png.length > 0 || !(images.get(key)?.png.length ?? 0)) images.set(key, image);
  };
  const timings: StageTiming[] = [];
  let job: Job | undefined;
  for await (const event of events) {
    onEvent?.(event);
    const e = event.event;
    if (e.case === "stageFinished") {
      if (e.value.timing) timings.push(e.value.timing);
      if (e.value.output) see(e.value.output);
    } else if (e.case === "preview" || e.case === "image") {
      see(e.value);
    } else if (e.case === "completed" || e.case === "failed" || e.case === "cancelled") {
      job = e.value;
    }
  }
  if (!job) throw new Error("the gateway closed the stream before the job ended");
  if (job.state !== JobState.SUCCEEDED) throw new JobFailedError(job);
  for (const image of job.images) see(image);
  const dir = path.join(outDir, job.jobId);
  await mkdir(dir, { recursive: true });
  const files = await Promise.all(
    [...images.values()].map(async (image) => {
      const file = path.join(dir, `${image.index}-${image.size}.png`);
      await writeFile(file, image.png.length > 0 ? image.png : await download(image.url));
      return { index: image.index, size: image.size, path: file };
    }),
  );
  files.sort((a, b) => a.index - b.index || a.size - b.size);
  // The job record holds the timings of the final images' whole routes; events may have been missed.
  const all = job.timings.length >= timings.length ? job.timings : timings;
  return { job, files, timings: all, seconds: (Date.now() - started) / 1000 };
}

async function download(url: string): Promise<Uint8Array> {
  const res = await fetch(url);
  if (!res.ok) throw new Error(`downloading ${url.split("?")[0]} failed: HTTP ${res.status}`);
  return new Uint8Array(await res.arrayBuffer());
}

/** Per stage: mean seconds of work and of queue wait over the job's images. */
export function summarizeTimings(
  timings: readonly StageTiming[],
): { stage: string; seconds: number; queueSeconds: number; images: number }[] {
  const byStage = new Map<number, StageTiming[]>();
  for (const t of timings) byStage.set(t.stage, [...(byStage.get(t.stage) ?? []), t]);
  return [...byStage.entries()]
    .sort(([a], [b]) => a - b)
    .map(([stage, ts]) => ({
      stage: stageName(stage),
      seconds: ts.reduce((s, t) => s + t.seconds, 0) / ts.length,
      queueSeconds: ts.reduce((s, t) => s + t.queueSeconds, 0) / ts.length,
      images: ts.length,
    }));
}

/** A person-readable report: total time, per-stage timings, and the files written. */
export function formatResult(result: RenderResult): string {
  const lines = [`job ${result.job.jobId} finished in ${result.seconds.toFixed(2)} s`];
  for (const t of summarizeTimings(result.timings)) {
    lines.push(
      `  ${t.stage.padEnd(14)} ${t.seconds.toFixed(3).padStart(8)} s per image (queue wait ${t.queueSeconds.toFixed(3)} s, ${t.images} image${t.images === 1 ? "" : "s"})`,
    );
  }
  for (const f of result.files) lines.push(`  image ${f.index} ${String(f.size).padStart(4)} px  ${f.path}`);
  return lines.join("\n");
}
