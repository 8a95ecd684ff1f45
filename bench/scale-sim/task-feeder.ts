import { JobStore, renderKey, taskSubject, type FarmConnection } from "@unclip/core";
import {
  create,
  stageName,
  stageOutputSize,
  stagePool,
  toBinary,
  JobKind,
  JobParamsSchema,
  JobSchema,
  JobState,
  Stage,
  StageTaskSchema,
  StageTimingSchema,
} from "@unclip/protocol";
import type { SyntheticOutputs } from "./synthetic-handler.js";

/** The route of a one-image 256 px generate job. */
export const GENERATE_256: readonly Stage[] = [Stage.PRIOR, Stage.DECODER, Stage.UPSCALE_256];

/**
 * Admits one-image jobs whose next task is at `stage`, the way the gateway does (job record first, then the task,
 * published with a deterministic msgID). A job that starts past the prior arrives as the earlier stages left it:
 * RUNNING, with their timings and their output (embedding or image key) in the task.
 */
export class TaskFeeder {
  private readonly jobs: JobStore;
  private readonly route: Stage[];
  private readonly upstream: Stage[];
  private seq = 0;

  constructor(
    private readonly conn: FarmConnection,
    private readonly stage: Stage,
    private readonly runId: string,
    private readonly outputs: SyntheticOutputs,
  ) {
    this.jobs = new JobStore(conn.jobs);
    const at = GENERATE_256.indexOf(stage);
    this.route = GENERATE_256.slice(at);
    this.upstream = GENERATE_256.slice(0, at);
  }

  async publish(count: number): Promise<void> {
    await Promise.all(Array.from({ length: count }, () => this.publishOne(this.seq++)));
  }

  private async publishOne(seq: number): Promise<void> {
    const jobId = `${this.runId}-${seq}`;
    const now = BigInt(Date.now());
    const seed = BigInt(seq);
    const prompt = "a red circle on a blue background";
    const params = create(JobParamsSchema, {
      kind: JobKind.GENERATE,
      prompt,
      numImages: 1,
      size: 256,
      priorSteps: 4,
      decoderSteps: 3,
      createdAtMs: now,
    });
    const timings = this.upstream.map((stage) => create(StageTimingSchema, { stage, index: 0, seconds: 0.25, worker: "upstream" }));
    await this.jobs.create(
      create(JobSchema, {
        jobId,
        kind: JobKind.GENERATE,
        state: this.upstream.length > 0 ? JobState.RUNNING : JobState.QUEUED,
        prompt,
        numImages: 1,
        size: 256,
        seed,
        createdAtMs: now,
        updatedAtMs: now,
      }),
    );
    const previous = this.upstream.at(-1);
    const task = create(StageTaskSchema, {
      jobId,
      index: 0,
      seed,
      route: this.route,
      params,
      timings,
      imageEmbedding: previous === Stage.PRIOR ? this.outputs.embedding : undefined,
      imageKey: previous !== undefined && stageOutputSize(previous) > 0 ? renderKey(jobId, 0, stageOutputSize(previous)) : "",
      enqueuedAtMs: BigInt(Date.now()),
    });
    await this.conn.js.publish(taskSubject(stagePool(this.stage)), toBinary(StageTaskSchema, task), {
      msgID: `${jobId}.0.${stageName(this.stage)}`,
    });
  }
}
