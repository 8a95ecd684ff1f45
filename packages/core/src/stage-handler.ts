import type { Pool, Stage, StageTask, Tensor } from "@unclip/protocol";

/**
 * What a stage produced for one task: an embedding for the next stage, or an image (PNG) to store; `bundle` names the
 * bundle that produced it when the handler serves several (default: the handler's `bundle`).
 */
export type StageOutput = (EmbeddingOutput | { png: Uint8Array }) & { bundle?: string };

/** An embedding for the decoder; manipulations also pass on their sources' embeddings, [k, D], to invert them under. */
export interface EmbeddingOutput {
  embedding: Tensor;
  sourceEmbeddings?: Tensor;
}

export interface TaskContext {
  readonly task: StageTask;
  readonly stage: Stage;
  /** 1 on first delivery. */
  readonly attempt: number;
  /**
   * Reports diffusion progress (step of total) to the job's watchers. It is also the batch's sign of life: a batch
   * that reports no step for UNCLIP_STALL_MS is aborted and its tasks released.
   */
  progress(step: number, total: number): void;
}

/** A stage's model code. The runtime owns pulling, batching, acks, heartbeats, storage, routing and shutdown. */
export interface StageHandler {
  readonly pool: Pool;
  /** name@version of the model bundle, for logs, metrics and job records. */
  readonly bundle: string;
  /** The execution provider the model really runs on ("cpu", "cuda"), for the info metric. */
  readonly executionProvider?: string;
  /** Diffusion steps the bundle runs for a task that asks for the default, by stage (for the gateway's rate estimates). */
  readonly defaultSteps?: Partial<Record<Stage, number>>;
  /** Tasks with equal keys can run as one model batch (same stage, steps, guidance, sampler, …). */
  batchKey(task: StageTask): string;
  /**
   * Runs one batch; returns one output or Error per task, in order. A FarmError that is not retryable fails the
   * job at once; other errors are retried on another delivery. `signal` aborts when the worker is forced to stop,
   * every job of the batch was cancelled, or the batch stalled.
   */
  run(batch: readonly TaskContext[], signal: AbortSignal): Promise<(StageOutput | Error)[]>;
}

/** A task the worker took: decoded, with the stage it is at. */
export interface HeldTask {
  readonly task: StageTask;
  readonly stage: Stage;
}
