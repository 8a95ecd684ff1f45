/// <reference path="./s3rver.d.ts" />
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import type { AddressInfo } from "node:net";
import S3rver from "s3rver";

export interface S3ServerHandle {
  readonly endpoint: string;
  readonly accessKey: string;
  readonly secretKey: string;
  stop(): Promise<void>;
}

/**
 * The embedded S3-compatible server (s3rver) for one-machine runs and tests; clusters use MinIO.
 * s3rver accepts the fixed credentials S3RVER/S3RVER and checks request signatures, presigned URLs included.
 */
export async function startS3Server(opts: { port?: number; directory?: string } = {}): Promise<S3ServerHandle> {
  const ownDir = !opts.directory;
  const directory = opts.directory ?? (await mkdtemp(path.join(tmpdir(), "unclip-s3-")));
  const server = new S3rver({ address: "127.0.0.1", port: opts.port ?? 0, directory, silent: true });
  const address = (await server.run()) as AddressInfo;
  return {
    endpoint: `http://127.0.0.1:${address.port}`,
    accessKey: "S3RVER",
    secretKey: "S3RVER",
    stop: async () => {
      await server.close();
      if (ownDir) await rm(directory, { recursive: true, force: true });
    },
  };
}
