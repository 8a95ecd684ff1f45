import { AsyncLocalStorage } from "node:async_hooks";
import http from "node:http";
import https from "node:https";
import type { Readable } from "node:stream";
import { Client } from "minio";
import type { S3Config } from "./config.js";
import { FarmError } from "./errors.js";

/** Deterministic keys: a redelivered task overwrites its output, never duplicates it. */
export const renderKey = (jobId: string, index: number, size: number): string => `renders/${jobId}/${index}/${size}.png`;
export const inputKey = (jobId: string, name: "source" | "source-b" | "mask"): string => `inputs/${jobId}/${name}.png`;

/**
 * The abort signal of the object-store call in progress. minio takes no signal of its own, so the transport below
 * reads it from the call's async context and hands it to every HTTP request that call makes.
 */
const callSignal = new AsyncLocalStorage<AbortSignal>();

/**
 * Images and inputs in an S3-compatible store (MinIO in a cluster, the embedded s3rver on one machine).
 *
 * Every call has a deadline (S3Config.timeoutMs): a store that accepts connections but never answers would
 * otherwise hold a task forever. At the deadline the HTTP request is destroyed and the call rejects with a
 * retryable UNAVAILABLE FarmError.
 */
export class ObjectStore {
  private readonly client: Client;
  private readonly publicClient: Client;

  constructor(private readonly config: S3Config) {
    this.client = clientFor(config.endpoint, config);
    this.publicClient = config.publicEndpoint === config.endpoint ? this.client : clientFor(config.publicEndpoint, config);
  }

  get bucket(): string {
    return this.config.bucket;
  }

  ensureBucket(): Promise<void> {
    return this.withDeadline("checking the bucket", async () => {
      if (!(await this.client.bucketExists(this.config.bucket))) {
        await this.client.makeBucket(this.config.bucket, this.config.region).catch((err: { code?: string }) => {
          if (err.code !== "BucketAlreadyOwnedByYou" && err.code !== "BucketAlreadyExists") throw err;
        });
      }
    });
  }

  put(key: string, bytes: Uint8Array, contentType = "image/png"): Promise<void> {
    return this.withDeadline(`writing ${key}`, async () => {
      const body = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
      await this.client.putObject(this.config.bucket, key, body, bytes.byteLength, { "Content-Type": contentType });
    });
  }

  /** Reads a whole object; the deadline covers the body too, not only the response headers. */
  get(key: string): Promise<Buffer> {
    return this.withDeadline(`reading ${key}`, async (signal) => {
      const stream: Readable = await this.client.getObject(this.config.bucket, key);
      signal.addEventListener("abort", () => stream.destroy(signal.reason as Error), { once: true });
      const chunks: Buffer[] = [];
      for await (const chunk of stream) chunks.push(chunk as Buffer);
      return Buffer.concat(chunks);
    });
  }

  /** A GET URL on the public endpoint, valid for ttlSeconds. */
  presign(key: string, ttlSeconds: number): Promise<string> {
    return this.withDeadline(`presigning ${key}`, () => this.publicClient.presignedGetObject(this.config.bucket, key, ttlSeconds));
  }

  /** Object keys under a prefix (tests and tools: e.g. what a job wrote under renders/<jobId>/). */
  list(prefix: string): Promise<string[]> {
    return this.withDeadline(`listing ${prefix}`, async (signal) => {
      const keys: string[] = [];
      const stream = this.client.listObjectsV2(this.config.bucket, prefix, true);
      signal.addEventListener("abort", () => stream.destroy(signal.reason as Error), { once: true });
      for await (const item of stream as AsyncIterable<{ name?: string }>) if (item.name) keys.push(item.name);
      return keys;
    });
  }

  private async withDeadline<T>(what: string, call: (signal: AbortSignal) => Promise<T>): Promise<T> {
    const ms = this.config.timeoutMs;
    const controller = new AbortController();
    const deadline = FarmError.unavailable(`the object store did not answer within ${ms} ms (${what}); it is overloaded or unreachable`);
    let timer: NodeJS.Timeout | undefined;
    const expired = new Promise<never>((_, reject) => {
      timer = setTimeout(() => {
        controller.abort(deadline);
        reject(deadline);
      }, ms);
    });
    try {
      // The race also ends calls that would wait past an aborted request (minio's own retry sleeps).
      return await Promise.race([callSignal.run(controller.signal, () => call(controller.signal)), expired]);
    } catch (err) {
      throw controller.signal.aborted ? deadline : err;
    } finally {
      clearTimeout(timer);
    }
  }
}

/** http(s).request with the signal of the object-store call it belongs to. */
function transportFor(protocol: string): Pick<typeof http, "request"> {
  const base = protocol === "https:" ? https : http;
  return {
    request: ((options: http.RequestOptions, callback?: (res: http.IncomingMessage) => void) =>
      base.request({ ...options, signal: callSignal.getStore() }, callback)) as typeof http.request,
  };
}

function clientFor(endpoint: string, config: S3Config): Client {
  const u = new URL(endpoint);
  return new Client({
    endPoint: u.hostname,
    port: u.port ? Number(u.port) : u.protocol === "https:" ? 443 : 80,
    useSSL: u.protocol === "https:",
    accessKey: config.accessKey,
    secretKey: config.secretKey,
    region: config.region,
    pathStyle: true,
    transport: transportFor(u.protocol),
  });
}
