import { Stage, stageName, stageOutputSize } from "@unclip/protocol";
import type { FarmTap } from "./farm-tap.js";
import type { JobRun } from "./farm-run.js";

/**
 * One stage of a one-image job on the wall clock (ms since the epoch; every process on this machine shares it).
 * From the job record: queue wait and stage time (StageTiming). From the events: the worker's stageStarted and
 * stageFinished stamps. From the tap: when the stage's task was published.
 */
export interface StageMarks {
  readonly stage: Stage;
  /** The task for this stage reached a plain NATS subscriber (the publish, as the server relays it). */
  readonly publishedAtMs: number;
  /** The worker started the batch (stageStarted). */
  readonly startAtMs: number;
  /** The model returned: start + StageTiming.seconds. The next task's enqueuedAtMs is stamped here. */
  readonly endAtMs: number;
  /** The worker announced stageFinished: after the output's S3 put and the next task's publish (they run together). */
  readonly finishedAtMs: number;
  /** StageTiming.queueSeconds in ms: from the previous stage's end (or the gateway's enqueue) to this start. */
  readonly queueMs: number;
  /** StageTiming.seconds in ms: the handler's time (input S3 get and PNG decode, model, PNG encode). */
  readonly stageMs: number;
  /** Bytes of this stage's task message. */
  readonly taskBytes: number;
  /** The task carried its input image, so the stage read nothing from S3. */
  readonly inlineImage: boolean;
}

export interface JobTimeline {
  readonly submitAtMs: number;
  /** The gateway wrote the QUEUED record (Job.createdAtMs). */
  readonly createdAtMs: number;
  readonly stages: readonly StageMarks[];
  /** The last worker updated the job record and announced completed (its own event, which the gateway drops). */
  readonly recordedAtMs: number;
  /** The client received the gateway's completed event. */
  readonly receivedAtMs: number;
}

/** One hop between two stages of a job (or from the gateway to the first stage). */
export interface HopSample {
  /** "decoder → upscale-256" */
  readonly hop: string;
  /** The PNG the hop stores (its side), 0 when an embedding or nothing travels through S3. */
  readonly pngSize: number;
  readonly taskBytes: number;
  /** StageTiming.queueSeconds of the receiving stage on an idle farm: the whole hop. */
  readonly hopMs: number;
  /**
   * Sending side: model end to stageFinished: the S3 put of the output and the publish, which run together when the
   * task carries the image, then the events. Not part of the hop when they do. NaN without an image.
   */
  readonly putMs: number;
  /** Model end to the task reaching a subscriber: the publish (after the S3 put when the task does not carry the image). */
  readonly publishMs: number;
  /** Receiving side: the task reaching a subscriber to the batch start (delivery to the open pull, decode, batch-fill wait, job check). */
  readonly receiveMs: number;
}

export function jobTimeline(run: JobRun, tap: FarmTap): JobTimeline {
  const started = new Map<Stage, number>();
  const finished = new Map<Stage, number>();
  for (const { event } of run.events) {
    const e = event.event;
    if (e.case === "stageStarted" && e.value.index === 0) started.set(e.value.stage, Number(event.atMs));
    if (e.case === "stageFinished" && e.value.timing?.index === 0) finished.set(e.value.timing.stage, Number(event.atMs));
  }
  const tasks = tap.tasksOf(run.jobId);
  const stages = [...run.job.timings]
    .filter((t) => t.index === 0)
    .map((t): StageMarks => {
      const startAtMs = started.get(t.stage) ?? Number.NaN;
      const task = tasks.find((k) => k.stage === t.stage);
      return {
        stage: t.stage,
        publishedAtMs: task?.receivedAtMs ?? Number.NaN,
        startAtMs,
        endAtMs: startAtMs + t.seconds * 1000,
        finishedAtMs: finished.get(t.stage) ?? Number.NaN,
        queueMs: t.queueSeconds * 1000,
        stageMs: t.seconds * 1000,
        taskBytes: task?.bytes ?? Number.NaN,
        inlineImage: task?.inlineImage ?? false,
      };
    })
    .sort((a, b) => a.startAtMs - b.startAtMs);
  const completed = tap.eventsOf(run.jobId).find((e) => e.case === "completed");
  const last = run.events.at(-1)!;
  return {
    submitAtMs: run.submitAtMs,
    createdAtMs: Number(run.job.createdAtMs),
    stages,
    recordedAtMs: completed?.atMs ?? Number.NaN,
    receivedAtMs: last.receivedAtMs,
  };
}

/** The job's hops: gateway → first stage, then stage to stage. */
export function hopSamples(t: JobTimeline): HopSample[] {
  return t.stages.map((s, i): HopSample => {
    const prev = t.stages[i - 1];
    if (!prev) {
      return {
        hop: `gateway → ${stageName(s.stage)}`,
        pngSize: 0,
        taskBytes: s.taskBytes,
        hopMs: s.queueMs,
        putMs: Number.NaN,
        publishMs: Number.NaN,
        receiveMs: s.startAtMs - s.publishedAtMs,
      };
    }
    const pngSize = stageOutputSize(prev.stage);
    return {
      hop: `${stageName(prev.stage)} → ${stageName(s.stage)}`,
      pngSize,
      taskBytes: s.taskBytes,
      hopMs: s.queueMs,
      putMs: pngSize > 0 ? prev.finishedAtMs - prev.endAtMs : Number.NaN,
      publishMs: s.publishedAtMs - prev.endAtMs,
      receiveMs: s.startAtMs - s.publishedAtMs,
    };
  });
}
