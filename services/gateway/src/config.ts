import { readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { ConfigError, int, loadCommonConfig, loadFaultPoints, str, type CommonConfig, type Env, type FaultPoints } from "@unclip/core";
import { MAX_IMAGES, MAX_URL_TTL_S } from "./request-validation.js";

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
  /**
   * The model bundle the prior pool runs (UNCLIP_BUNDLE, default models/shapes-v1 as for the prior worker): only its
   * tokenizer is loaded, to refuse prompts longer than the text encoder reads.
   */
  readonly bundle: string;
  /** Points where the gateway kills itself on purpose, for fault tests (UNCLIP_FAULT_POINTS; none by default). */
  readonly faultPoints: FaultPoints;
  /**
   * UNCLIP_API_KEYS_FILE: the tenants' API keys (SHA-256 only), reloaded on change. Unset: the farm is open to
   * anyone who reaches it (the local default; a warning is logged).
   */
  readonly apiKeysFile: string | undefined;
  /** Quota of a tenant without its own max_queued_images (UNCLIP_TENANT_MAX_QUEUED_IMAGES; default 0 = none). */
  readonly tenantMaxQueuedImages: number | undefined;
  /** Longest presigned URL lifetime a request may ask for (UNCLIP_URL_TTL_MAX_S, default 3600, at most 86400). */
  readonly urlTtlMaxS: number;
  /**
   * gRPC TLS: UNCLIP_TLS_CERT and UNCLIP_TLS_KEY (PEM files) together; with UNCLIP_TLS_CLIENT_CA too, clients must
   * present a certificate that CA signed (mutual TLS). Unset: plaintext.
   */
  readonly tls: { readonly cert: Buffer; readonly key: Buffer; readonly clientCa: Buffer | undefined } | undefined;
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
    // Same depth as services/prior-worker/src/main.ts (and dist/main.mjs), so both resolve to the same default bundle.
    bundle: str(env, "UNCLIP_BUNDLE", fileURLToPath(new URL("../../../models/shapes-v1/", import.meta.url))),
    faultPoints: loadFaultPoints(env),
    apiKeysFile: env.UNCLIP_API_KEYS_FILE || undefined,
    tenantMaxQueuedImages: tenantQuota(env),
    urlTtlMaxS: int(env, "UNCLIP_URL_TTL_MAX_S", 3_600, 60, MAX_URL_TTL_S),
    tls: tlsFiles(env),
  };
}

function tenantQuota(env: Env): number | undefined {
  const n = int(env, "UNCLIP_TENANT_MAX_QUEUED_IMAGES", 0, 0, 1_000_000);
  if (n > 0 && n < MAX_IMAGES) {
    // A quota below one job's largest image count would refuse such jobs forever (and stall batches).
    throw new ConfigError(`UNCLIP_TENANT_MAX_QUEUED_IMAGES=${n} must be 0 (no quota) or from ${MAX_IMAGES} to 1000000`);
  }
  return n === 0 ? undefined : n;
}

function tlsFiles(env: Env): GatewayConfig["tls"] {
  const pem = (name: string) => {
    const file = env[name];
    if (!file) return undefined;
    try {
      return readFileSync(file);
    } catch (err) {
      throw new ConfigError(`${name}=${file} cannot be read: ${(err as NodeJS.ErrnoException).code ?? String(err)}`);
    }
  };
  const cert = pem("UNCLIP_TLS_CERT");
  const key = pem("UNCLIP_TLS_KEY");
  const clientCa = pem("UNCLIP_TLS_CLIENT_CA");
  if (!cert !== !key) throw new ConfigError("UNCLIP_TLS_CERT and UNCLIP_TLS_KEY go together: set both or neither");
  if (clientCa && !cert) throw new ConfigError("UNCLIP_TLS_CLIENT_CA (mutual TLS) needs UNCLIP_TLS_CERT and UNCLIP_TLS_KEY too");
  return cert && key ? { cert, key, clientCa } : undefined;
}
