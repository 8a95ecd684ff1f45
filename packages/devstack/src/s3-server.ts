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
  readonly port: number;
  /** Stops serving at once, dropping open connections as a crashed server would; objects and port are kept. */
  halt(): Promise<void>;
  /** Serves again on the same port and directory after halt() (a no-op while serving). */
  restart(): Promise<void>;
  stop(): Promise<void>;
}

/**
 * The embedded S3-compatible server (s3rver) for one-machine runs and tests; clusters use MinIO.
 * s3rver accepts the fixed credentials S3RVER/S3RVER and checks request signatures, presigned URLs included.
 */
export async function startS3Server(opts: { port?: number; directory?: string } = {}): Promise<S3ServerHandle> {
  const ownDir = !opts.directory;
  const directory = opts.directory ?? (await mkdtemp(path.join(tmpdir(), "unclip-s3-")));
  let server: S3rver | undefined;
  const run = async (port: number) => {
    const started = new S3rver({ address: "127.0.0.1", port, directory, silent: true });
    const address = (await started.run()) as AddressInfo;
    server = started;
    return address.port;
  };
  const halt = async () => {
    const running = server;
    server = undefined;
    if (!running) return;
    const closed = running.close();
    running.httpServer?.closeAllConnections();
    await closed;
  };
  const port = await run(opts.port ?? 0);
  return {
    endpoint: `http://127.0.0.1:${port}`,
    accessKey: "S3RVER",
    secretKey: "S3RVER",
    port,
    halt,
    restart: async () => {
      if (!server) await run(port);
    },
    stop: async () => {
      await halt();
      if (ownDir) await rm(directory, { recursive: true, force: true });
    },
  };
}
