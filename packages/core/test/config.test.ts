import { describe, expect, it } from "vitest";
import { ConfigError, loadCommonConfig, loadWorkerConfig } from "../src/index.js";

describe("configuration", () => {
  it("applies defaults and reads values", () => {
    const c = loadCommonConfig({ UNCLIP_NATS_URL: "nats://nats:4222", UNCLIP_METRICS_PORT: "0" }, 9464);
    expect(c.natsUrl).toBe("nats://nats:4222");
    expect(c.metricsPort).toBe(0);
    expect(c.s3.publicEndpoint).toBe(c.s3.endpoint);
    const w = loadWorkerConfig({ UNCLIP_MAX_BATCH: "32", UNCLIP_ACK_WAIT_MS: "5000" }, { metricsPort: 9466, maxBatch: 8, bundle: "/b" });
    expect(w.worker.maxBatch).toBe(32);
    expect(w.worker.ackWaitMs).toBe(5000);
    expect(w.bundle).toBe("/b");
    expect(w.executionProvider).toBe("cpu");
  });

  it("refuses bad values and unknown UNCLIP_ names with a message that names the variable", () => {
    expect(() => loadCommonConfig({ UNCLIP_METRICS_PORT: "70000" }, 1)).toThrow(
      /UNCLIP_METRICS_PORT="70000" must be an integer from 0 to 65535/,
    );
    expect(() => loadCommonConfig({ UNCLIP_S3_ENDPOINT: "not a url" }, 1)).toThrow(/UNCLIP_S3_ENDPOINT/);
    expect(() => loadCommonConfig({ UNCLIP_LOG_LEVEL: "loud" }, 1)).toThrow(
      /UNCLIP_LOG_LEVEL="loud" must be one of debug, info, warn, error/,
    );
    expect(() => loadCommonConfig({ UNCLIP_MAX_BACH: "4" }, 1)).toThrow(ConfigError);
    expect(() => loadCommonConfig({ UNCLIP_MAX_BACH: "4" }, 1)).toThrow(/unknown configuration variable\(s\) UNCLIP_MAX_BACH/);
    expect(() => loadWorkerConfig({ UNCLIP_EXECUTION_PROVIDER: "tpu" }, { metricsPort: 1, maxBatch: 1, bundle: "" })).toThrow(/cpu, cuda/);
  });

  it("holds one batch of prefetch by default, and UNCLIP_PREFETCH sets it", () => {
    const defaults = { metricsPort: 1, maxBatch: 8, bundle: "" };
    expect(loadWorkerConfig({}, defaults).worker.prefetch).toBe(8);
    expect(loadWorkerConfig({ UNCLIP_MAX_BATCH: "2" }, defaults).worker.prefetch).toBe(2);
    expect(loadWorkerConfig({ UNCLIP_PREFETCH: "0" }, defaults).worker.prefetch).toBe(0);
    expect(() => loadWorkerConfig({ UNCLIP_PREFETCH: "-1" }, defaults)).toThrow(/UNCLIP_PREFETCH="-1" must be an integer from 0/);
  });

  it("reads the fault settings: backoff schedule, max deliveries, stall limit and S3 deadline, with production defaults", () => {
    const defaults = { metricsPort: 1, maxBatch: 8, bundle: "" };
    const w = loadWorkerConfig({}, defaults);
    expect(w.worker.retryBackoffMs).toEqual([1000, 2000, 5000, 10_000, 30_000]);
    expect(w.worker.maxDeliver).toBe(8);
    expect(w.worker.stallMs).toBe(120_000);
    expect(w.s3.timeoutMs).toBe(10_000);
    const set = loadWorkerConfig({ UNCLIP_RETRY_BACKOFF_MS: "100, 200,0", UNCLIP_STALL_MS: "500", UNCLIP_S3_TIMEOUT_MS: "1000" }, defaults);
    expect(set.worker.retryBackoffMs).toEqual([100, 200, 0]);
    expect(set.worker.stallMs).toBe(500);
    expect(set.s3.timeoutMs).toBe(1000);
    expect(() => loadWorkerConfig({ UNCLIP_RETRY_BACKOFF_MS: "1s,2s" }, defaults)).toThrow(
      /UNCLIP_RETRY_BACKOFF_MS="1s,2s" must be a comma-separated list of integers/,
    );
    expect(() => loadCommonConfig({ UNCLIP_S3_TIMEOUT_MS: "0" }, 1)).toThrow(/UNCLIP_S3_TIMEOUT_MS="0" must be an integer from 100/);
    // The fixed retry delay it replaces is refused, so a stale setting is noticed.
    expect(() => loadWorkerConfig({ UNCLIP_RETRY_DELAY_MS: "1000" }, defaults)).toThrow(
      /unknown configuration variable\(s\) UNCLIP_RETRY_DELAY_MS/,
    );
  });

  it("accepts the variables of the CLI and the local launcher, which share the shell with the services", () => {
    const env = { UNCLIP_GATEWAY: "gw:50051", UNCLIP_FARM_WORKERS: "decoder=3" };
    expect(() => loadCommonConfig(env, 1)).not.toThrow();
    expect(() => loadCommonConfig({ ...env, UNCLIP_GATEWAYY: "x" }, 1)).toThrow(/UNCLIP_GATEWAYY/);
  });
});
