import {
  create,
  ImageRefSchema,
  JobState,
  StageFinishedSchema,
  type ImageRef,
  type Job,
  type StageTask,
  type StageTiming,
} from "@unclip/protocol";
import type { NatsConnection } from "@nats-io/transport-node";
import { publishEvent } from "./events.js";
import { isTerminal, type JobStore } from "./job-store.js";

/**
 * Records one finished image in the job: sets state SUCCEEDED once every image is in, and announces the image
 * and, at the end, the completed job. Idempotent: a redelivered task replaces its image instead of adding one.
 */
export async function recordImage(
  jobs: JobStore,
  nc: NatsConnection,
  task: StageTask,
  image: ImageRef,
  timings: StageTiming[],
): Promise<Job | undefined> {
  // Announced before the record changes: watchers end their stream on the record's terminal state, and events
  // from one connection arrive in order, so the image event is never cut off.
  publishEvent(nc, task.jobId, { case: "image", value: image });
  const job = await jobs.update(task.jobId, (j) => {
    if (isTerminal(j)) return undefined;
    j.images = [...j.images.filter((i) => i.index !== image.index), image].sort((a, b) => a.index - b.index);
    j.timings = [...j.timings.filter((t) => t.index !== image.index), ...timings];
    j.bundles = [...new Set([...j.bundles, ...task.bundles])];
    j.state = j.images.length >= j.numImages ? JobState.SUCCEEDED : JobState.RUNNING;
    return j;
  });
  if (!job) return undefined;
  if (job.state === JobState.SUCCEEDED) publishEvent(nc, task.jobId, { case: "completed", value: job });
  return job;
}

/** Marks a job FAILED with a readable reason (unless it already ended) and announces it. */
export async function failJob(jobs: JobStore, nc: NatsConnection, jobId: string, reason: string): Promise<Job | undefined> {
  const job = await jobs.update(jobId, (j) => {
    if (isTerminal(j)) return undefined;
    j.state = JobState.FAILED;
    j.error = reason;
    return j;
  });
  if (job?.state === JobState.FAILED && job.error === reason) publishEvent(nc, jobId, { case: "failed", value: job });
  return job;
}

/** Moves a QUEUED job to RUNNING when its first stage starts. */
export async function markRunning(jobs: JobStore, jobId: string): Promise<Job | undefined> {
  return jobs.update(jobId, (j) => {
    if (j.state !== JobState.QUEUED) return undefined;
    j.state = JobState.RUNNING;
    return j;
  });
}

export function stageFinishedEvent(timing: StageTiming, output?: ImageRef) {
  return { case: "stageFinished" as const, value: create(StageFinishedSchema, { timing, output }) };
}

export function imageRef(index: number, size: number, key: string, seed: bigint): ImageRef {
  return create(ImageRefSchema, { index, size, key, seed });
}
