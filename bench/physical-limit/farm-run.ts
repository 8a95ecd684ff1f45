import type { UnclipClient } from "@unclip/cli";
import {
  create,
  GenerateRequestSchema,
  JobState,
  SamplingOptionsSchema,
  type GenerateRequest,
  type Job,
  type JobEvent,
} from "@unclip/protocol";
import type { BenchConfig } from "./bench-config.js";
import { PROMPTS, type OutputSize, type PipelineRun } from "./inprocess.js";

/** An event of a job as the client received it: `atMs` is the stamp of its sender (worker or gateway). */
export interface ReceivedEvent {
  readonly receivedAtMs: number;
  readonly event: JobEvent;
}

/** One job followed through Generate from submit to its completed event. */
export interface JobRun {
  readonly jobId: string;
  readonly size: number;
  /** Wall-clock ms (Date.now(), the clock of every process on this machine) when the call was made. */
  readonly submitAtMs: number;
  /** Submit to the completed event, on the monotonic clock. */
  readonly latencyMs: number;
  /** The job record the completed event carries (what GetJob returns): timings and image keys. */
  readonly job: Job;
  readonly events: readonly ReceivedEvent[];
}

export function generateRequest(cfg: BenchConfig, size: OutputSize, i: number): GenerateRequest {
  return create(GenerateRequestSchema, {
    prompt: PROMPTS[i % PROMPTS.length]!,
    size,
    numImages: 1,
    seed: BigInt(i + 1),
    sampling: create(SamplingOptionsSchema, { priorSteps: cfg.priorSteps, decoderSteps: cfg.decoderSteps }),
  });
}

/** Submits one job and follows its stream to the end; throws when it fails or is cancelled. */
export async function runJob(client: UnclipClient, req: GenerateRequest): Promise<JobRun> {
  const submitAtMs = Date.now();
  const started = performance.now();
  const events: ReceivedEvent[] = [];
  for await (const event of client.generate(req)) {
    events.push({ receivedAtMs: Date.now(), event });
    const e = event.event;
    if (e.case === "completed" && e.value.state === JobState.SUCCEEDED) {
      return { jobId: event.jobId, size: req.size, submitAtMs, latencyMs: performance.now() - started, job: e.value, events };
    }
    if (e.case === "failed" || e.case === "cancelled") throw new Error(`job ${event.jobId} ${e.case}: ${e.value.error}`);
  }
  throw new Error("the Generate stream ended before its job did");
}

/** `images` one-image jobs submitted at once: the farm at saturation, measured as the in-process pipeline is. */
export async function saturate(client: UnclipClient, cfg: BenchConfig, size: OutputSize, images: number): Promise<PipelineRun> {
  const started = performance.now();
  const latenciesMs = await Promise.all(
    Array.from({ length: images }, async (_, i) => {
      await runJob(client, generateRequest(cfg, size, i));
      return performance.now() - started;
    }),
  );
  return { images, seconds: (performance.now() - started) / 1000, latenciesMs };
}

/**
 * Warms every worker at the shapes the benchmark uses: one 1024 px job (every stage at batch 1), then 16 concurrent
 * 256 px jobs (a full prior batch, full decoder and upscale-256 batches).
 */
export async function warmFarm(client: UnclipClient, cfg: BenchConfig): Promise<void> {
  await runJob(client, generateRequest(cfg, 1024, 0));
  await Promise.all(Array.from({ length: 16 }, (_, i) => runJob(client, generateRequest(cfg, 256, i))));
}
