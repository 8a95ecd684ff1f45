import { Client } from "minio";
import type { Readable } from "node:stream";
import type { S3Config } from "./config.js";

/** Deterministic keys: a redelivered task overwrites its output, never duplicates it. */
export const renderKey = (jobId: string, index: number, size: number): string => `renders/${jobId}/${index}/${size}.png`;
export const inputKey = (jobId: string, name: "source" | "mask"): string => `inputs/${jobId}/${name}.png`;

/** Images and inputs in an S3-compatible store (MinIO in a cluster, the embedded s3rver on one machine). */
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

  async ensureBucket(): Promise<void> {
    if (!(await this.client.bucketExists(this.config.bucket))) {
      await this.client.makeBucket(this.config.bucket, this.config.region).catch((err: { code?: string }) => {
        if (err.code !== "BucketAlreadyOwnedByYou" && err.code !== "BucketAlreadyExists") throw err;
      });
    }
  }

  async put(key: string, bytes: Uint8Array, contentType = "image/png"): Promise<void> {
    await this.client.putObject(this.config.bucket, key, Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength), bytes.byteLength, {
      "Content-Type": contentType,
    });
  }

  async get(key: string): Promise<Buffer> {
    const stream: Readable = await this.client.getObject(this.config.bucket, key);
    const chunks: Buffer[] = [];
    for await (const chunk of stream) chunks.push(chunk as Buffer);
    return Buffer.concat(chunks);
  }

  /** A GET URL on the public endpoint, valid for ttlSeconds. */
  presign(key: string, ttlSeconds: number): Promise<string> {
    return this.publicClient.presignedGetObject(this.config.bucket, key, ttlSeconds);
  }
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
  });
}
