import { int, loadCommonConfig, str, type CommonConfig, type Env } from "@unclip/core";

export interface GatewayConfig extends CommonConfig {
  /** gRPC listen address (UNCLIP_GRPC_HOST, default 0.0.0.0) and port (UNCLIP_GRPC_PORT, default 50051; 0 = any free port). */
  readonly grpcHost: string;
  readonly grpcPort: number;
  /** How long job records are kept (UNCLIP_JOB_TTL_S, default 7 days). */
  readonly jobTtlSeconds: number;
  /**
   * Admission refuses a job with RESOURCE_EXHAUSTED when the tasks queued or in flight in every pool, plus the job's
   * own (images × stages), would pass UNCLIP_MAX_QUEUED_TASKS (default 10000) ...
   */
  readonly maxQueuedTasks: number;
  /** ... or when its ETA would pass UNCLIP_MAX_QUEUE_SECONDS (default 3600; 0 = no limit on the ETA). */
  readonly maxQueueSeconds: number;
  /** Most items of one batch in flight at once (UNCLIP_BATCH_IN_FLIGHT, default 64): its share of the batch lane. */
  readonly batchInFlight: number;
  readonly forceMs: number;
}

export function loadGatewayConfig(env: Env = process.env): GatewayConfig {
  return {
    ...loadCommonConfig(env, 9464),
    grpcHost: str(env, "UNCLIP_GRPC_HOST", "0.0.0.0"),
    grpcPort: int(env, "UNCLIP_GRPC_PORT", 50051, 0, 65535),
    jobTtlSeconds: int(env, "UNCLIP_JOB_TTL_S", 7 * 24 * 3600, 60, 365 * 24 * 3600),
    maxQueuedTasks: int(env, "UNCLIP_MAX_QUEUED_TASKS", 10_000, 1, 10_000_000),
    maxQueueSeconds: int(env, "UNCLIP_MAX_QUEUE_SECONDS", 3_600, 0, 30 * 24 * 3600),
    batchInFlight: int(env, "UNCLIP_BATCH_IN_FLIGHT", 64, 1, 10_000),
    forceMs: int(env, "UNCLIP_SHUTDOWN_FORCE_MS", 30_000, 1_000, 3_600_000),
  };
}
