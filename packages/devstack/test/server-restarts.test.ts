import http from "node:http";
import net from "node:net";
import { afterEach, describe, expect, it } from "vitest";
import { Client } from "minio";
import { startNatsServer, type NatsServerHandle } from "../src/nats-server.js";
import { startS3Server, type S3ServerHandle } from "../src/s3-server.js";

let s3: S3ServerHandle | undefined;
let nats: NatsServerHandle | undefined;
afterEach(async () => {
  await s3?.stop();
  await nats?.stop();
  s3 = nats = undefined;
});

/** The first line a server sends on a new connection, or the connection error's code. */
function greeting(port: number): Promise<string> {
  return new Promise((resolve) => {
    const s = net.connect({ host: "127.0.0.1", port });
    s.once("data", (d) => {
      resolve(d.toString().split("\r\n")[0]!);
      s.destroy();
    });
    s.once("error", (err: NodeJS.ErrnoException) => resolve(err.code ?? "error"));
  });
}

describe("S3 server halt and restart", () => {
  it("stops serving at halt() and serves the same objects on the same port after restart()", async () => {
    s3 = await startS3Server();
    const port = s3.port;
    // A fresh connection pool per client: a kept-alive socket to the halted server would only fail once more.
    const client = () =>
      new Client({
        endPoint: "127.0.0.1",
        port,
        useSSL: false,
        accessKey: "S3RVER",
        secretKey: "S3RVER",
        transportAgent: new http.Agent(),
      });
    await client().makeBucket("chaos-test");
    await client().putObject("chaos-test", "k", Buffer.from("kept"));
    await s3.halt();
    await expect(fetch(s3.endpoint)).rejects.toThrow();
    await s3.restart();
    expect(s3.endpoint).toBe(`http://127.0.0.1:${String(port)}`);
    const chunks: Buffer[] = [];
    for await (const c of await client().getObject("chaos-test", "k")) chunks.push(c as Buffer);
    expect(Buffer.concat(chunks).toString()).toBe("kept");
  });
});

describe("nats-server kill and restart", () => {
  it("dies at kill() and listens on the same port, with the same store, after restart()", async () => {
    nats = await startNatsServer();
    expect(await greeting(nats.port)).toMatch(/^INFO \{/);
    await nats.kill();
    expect(await greeting(nats.port)).toBe("ECONNREFUSED");
    await nats.restart();
    const info = JSON.parse((await greeting(nats.port)).slice("INFO ".length)) as { port: number; jetstream?: boolean };
    expect(info).toMatchObject({ port: nats.port, jetstream: true });
  });
});
