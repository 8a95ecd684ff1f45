import type { Logger, S3Config, WorkerMetrics } from "@unclip/core";
import type { SyntheticOutputs } from "./synthetic-handler.js";

/** What every run shares: the S3 server, the synthetic outputs, logging and metrics, and the time scale. */
export interface SimContext {
  readonly s3: S3Config;
  readonly outputs: SyntheticOutputs;
  readonly log: Logger;
  readonly metrics: WorkerMetrics;
  readonly timeScale: number;
}
