import { existsSync } from "node:fs";
import type { NatsSettings } from "./nats.js";

/**
 * Typed configuration from environment variables. Every process compiles its options once at start
 * (`loadXConfig(env = process.env)`); a bad value stops startup with a message that names the variable.
 * Unknown `UNCLIP_*` variables are refused so that a typo does not silently fall back to a default.
 */
export class ConfigError extends Error {
  override name = "ConfigError";
}

/** Every variable any farm process reads; a process refuses UNCLIP_* names outside this list. */
export const KNOWN_VARIABLES = new Set([
  "UNCLIP_NATS_URL",
  "UNCLIP_NATS_REPLICAS",
  "UNCLIP_NATS_USER",
  "UNCLIP_NATS_PASSWORD",
  "UNCLIP_NATS_TOKEN",
  "UNCLIP_NATS_CREDS",
  "UNCLIP_NATS_TLS_CA",
  "UNCLIP_NATS_TLS_CERT",
  "UNCLIP_NATS_TLS_KEY",
  "UNCLIP_API_KEYS_FILE",
  "UNCLIP_TENANT_MAX_QUEUED_IMAGES",
  "UNCLIP_URL_TTL_MAX_S",
  "UNCLIP_TLS_CERT",
  "UNCLIP_TLS_KEY",
  "UNCLIP_TLS_CLIENT_CA",
  "UNCLIP_INTRA_OP_THREADS",
  "UNCLIP_INTRA_OP_SPINNING",
  "UNCLIP_STEP_EVENT_MS",
  "UNCLIP_S3_ENDPOINT",
  "UNCLIP_S3_PUBLIC_ENDPOINT",
  "UNCLIP_S3_ACCESS_KEY",
  "UNCLIP_S3_SECRET_KEY",
  "UNCLIP_S3_BUCKET",
  "UNCLIP_S3_REGION",
  "UNCLIP_LOG_LEVEL",
  "UNCLIP_METRICS_PORT",
  "UNCLIP_GRPC_PORT",
  "UNCLIP_GRPC_HOST",
  "UNCLIP_BUNDLE",
  "UNCLIP_EXECUTION_PROVIDER",
  "UNCLIP_MAX_BATCH",
  "UNCLIP_PREFETCH",
  "UNCLIP_MAX_WAIT_MS",
  "UNCLIP_ACK_WAIT_MS",
  "UNCLIP_MAX_DELIVER",
  "UNCLIP_SHUTDOWN_GRACE_MS",
  "UNCLIP_SHUTDOWN_FORCE_MS",
  "UNCLIP_UPSCALE_TILE",
  "UNCLIP_UPSCALE_TILE_OVERLAP",
  "UNCLIP_UPSCALE_BACK_PROJECTION",
  "UNCLIP_WORKER_NAME",
  "UNCLIP_JOB_TTL_S",
  "UNCLIP_MAX_QUEUED_TASKS",
  "UNCLIP_MAX_QUEUE_SECONDS",
  "UNCLIP_BATCH_IN_FLIGHT",
  "UNCLIP_FAULT_POINTS",
  "UNCLIP_S3_TIMEOUT_MS",
  "UNCLIP_RETRY_BACKOFF_MS",
  "UNCLIP_STALL_MS",
]);

/**
 * Variables that other farm tools read from the same environment: the CLI's gateway address and the local
 * launcher's worker counts. Services ignore them rather than refuse them, so one exported shell serves them all.
 */
export const OTHER_TOOLS_VARIABLES = new Set(["UNCLIP_GATEWAY", "UNCLIP_FARM_WORKERS", "UNCLIP_API_KEY"]);

export type Env = Readonly<Record<string, string | undefined>>;

export function rejectUnknownVariables(env: Env): void {
  const unknown = Object.keys(env).filter((k) => k.startsWith("UNCLIP_") && !KNOWN_VARIABLES.has(k) && !OTHER_TOOLS_VARIABLES.has(k));
  if (unknown.length > 0) {
    throw new ConfigError(`unknown configuration variable(s) ${unknown.join(", ")}; known: ${[...KNOWN_VARIABLES].join(", ")}`);
  }
}

export function str(env: Env, name: string, fallback: string): string {
  const v = env[name];
  return v === undefined || v === "" ? fallback : v;
}

export function int(env: Env, name: string, fallback: number, min: number, max: number): number {
  const raw = env[name];
  if (raw === undefined || raw === "") return fallback;
  const v = Number(raw);
  if (!Number.isInteger(v) || v < min || v > max) {
    throw new ConfigError(`${name}=${JSON.stringify(raw)} must be an integer from ${min} to ${max}`);
  }
  return v;
}

export function oneOf<T extends string>(env: Env, name: string, fallback: T, values: readonly T[]): T {
  const v = str(env, name, fallback);
  if (!values.includes(v as T)) throw new ConfigError(`${name}=${JSON.stringify(v)} must be one of ${values.join(", ")}`);
  return v as T;
}

export function url(env: Env, name: string, fallback: string): string {
  const v = str(env, name, fallback);
  try {
    new URL(v);
  } catch {
    throw new ConfigError(`${name}=${JSON.stringify(v)} is not a URL`);
  }
  return v;
}

/** Settings every farm process shares: where NATS and the object store are, logging and metrics. */
export interface CommonConfig {
  readonly natsUrl: string;
  /** NATS URL, credentials and the replicas of the farm's streams and buckets. */
  readonly nats: NatsSettings;
  readonly s3: S3Config;
  readonly logLevel: "debug" | "info" | "warn" | "error";
  /** Port of the /metrics HTTP server; 0 picks a free one. */
  readonly metricsPort: number;
}

export interface S3Config {
  /** Endpoint the process itself uses. */
  readonly endpoint: string;
  /** Endpoint put into presigned URLs handed to clients (defaults to endpoint). */
  readonly publicEndpoint: string;
  readonly accessKey: string;
  readonly secretKey: string;
  readonly bucket: string;
  readonly region: string;
  /**
   * Deadline of every object-store call, in ms (UNCLIP_S3_TIMEOUT_MS, default 10000): at the deadline the request is
   * destroyed and the call fails with a retryable UNAVAILABLE error.
   */
  readonly timeoutMs: number;
}

export function loadCommonConfig(env: Env, defaultMetricsPort: number): CommonConfig {
  rejectUnknownVariables(env);
  const endpoint = url(env, "UNCLIP_S3_ENDPOINT", "http://127.0.0.1:4568");
  const natsUrl = str(env, "UNCLIP_NATS_URL", "nats://127.0.0.1:4222");
  const user = env.UNCLIP_NATS_USER || undefined;
  const pass = env.UNCLIP_NATS_PASSWORD || undefined;
  if ((user === undefined) !== (pass === undefined))
    throw new ConfigError("UNCLIP_NATS_USER and UNCLIP_NATS_PASSWORD go together: set both or neither");
  return {
    natsUrl,
    nats: {
      url: natsUrl,
      replicas: int(env, "UNCLIP_NATS_REPLICAS", 1, 1, 5),
      user,
      pass,
      token: env.UNCLIP_NATS_TOKEN || undefined,
      credsFile: env.UNCLIP_NATS_CREDS || undefined,
      tls: natsTls(env),
    },
    s3: {
      endpoint,
      publicEndpoint: url(env, "UNCLIP_S3_PUBLIC_ENDPOINT", endpoint),
      accessKey: str(env, "UNCLIP_S3_ACCESS_KEY", "S3RVER"),
      secretKey: str(env, "UNCLIP_S3_SECRET_KEY", "S3RVER"),
      bucket: str(env, "UNCLIP_S3_BUCKET", "unclip"),
      region: str(env, "UNCLIP_S3_REGION", "us-east-1"),
      timeoutMs: int(env, "UNCLIP_S3_TIMEOUT_MS", 10_000, 100, 600_000),
    },
    logLevel: oneOf(env, "UNCLIP_LOG_LEVEL", "info", ["debug", "info", "warn", "error"] as const),
    metricsPort: int(env, "UNCLIP_METRICS_PORT", defaultMetricsPort, 0, 65535),
  };
}

/** UNCLIP_NATS_TLS_CA (trust these roots), UNCLIP_NATS_TLS_CERT and UNCLIP_NATS_TLS_KEY (a client certificate). */
function natsTls(env: Env): NatsSettings["tls"] {
  const caFile = env.UNCLIP_NATS_TLS_CA || undefined;
  const certFile = env.UNCLIP_NATS_TLS_CERT || undefined;
  const keyFile = env.UNCLIP_NATS_TLS_KEY || undefined;
  if (!certFile !== !keyFile) throw new ConfigError("UNCLIP_NATS_TLS_CERT and UNCLIP_NATS_TLS_KEY go together: set both or neither");
  for (const [name, file] of [
    ["UNCLIP_NATS_TLS_CA", caFile],
    ["UNCLIP_NATS_TLS_CERT", certFile],
    ["UNCLIP_NATS_TLS_KEY", keyFile],
  ] as const) {
    if (file && !existsSync(file)) throw new ConfigError(`${name}=${file}: no such file`);
  }
  return caFile || certFile ? { caFile, certFile, keyFile } : undefined;
}
