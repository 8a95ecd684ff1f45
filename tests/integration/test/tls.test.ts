import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { execFileSync } from "node:child_process";
import { randomUUID } from "node:crypto";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { status } from "@grpc/grpc-js";
import { runCli } from "@unclip/cli";
import { connectFarm } from "@unclip/core";
import {
  repoRoot,
  startNatsServer,
  startS3Server,
  startService,
  type NatsServerHandle,
  type S3ServerHandle,
  type ServiceProcess,
} from "@unclip/devstack";

/**
 * gRPC TLS and mutual TLS on real gateway processes, and NATS over TLS, with certificates made by openssl at test
 * time: a self-signed server certificate for localhost and 127.0.0.1, and a CA that signs a client certificate.
 */
let dir: string;
const pem = (name: string) => path.join(dir, name);
const openssl = (...args: string[]) => execFileSync("openssl", args, { cwd: dir, stdio: ["ignore", "ignore", "pipe"] });
const EC = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"];

let nats: NatsServerHandle;
let s3: S3ServerHandle;
let tlsGateway: ServiceProcess;
let mtlsGateway: ServiceProcess;

beforeAll(async () => {
  dir = await mkdtemp(path.join(tmpdir(), "tls-test-"));
  const san = ["-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1"];
  openssl("req", "-x509", ...EC, "-subj", "/CN=localhost", ...san, "-days", "1", "-keyout", "server.key", "-out", "server.pem");
  openssl("req", "-x509", ...EC, "-subj", "/CN=unclip test CA", "-days", "1", "-keyout", "ca.key", "-out", "ca.pem");
  openssl("req", "-new", ...EC, "-subj", "/CN=a farm client", "-keyout", "client.key", "-out", "client.csr");
  await writeFile(pem("client.ext"), "extendedKeyUsage=clientAuth\n");
  openssl(
    "x509",
    "-req",
    "-in",
    "client.csr",
    "-CA",
    "ca.pem",
    "-CAkey",
    "ca.key",
    "-CAcreateserial",
    "-days",
    "1",
    "-extfile",
    "client.ext",
    "-out",
    "client.pem",
  );

  nats = await startNatsServer();
  s3 = await startS3Server();
  const env = {
    UNCLIP_NATS_URL: nats.url,
    UNCLIP_S3_ENDPOINT: s3.endpoint,
    UNCLIP_S3_ACCESS_KEY: s3.accessKey,
    UNCLIP_S3_SECRET_KEY: s3.secretKey,
    UNCLIP_METRICS_PORT: "0",
    UNCLIP_GRPC_PORT: "0",
    UNCLIP_TLS_CERT: pem("server.pem"),
    UNCLIP_TLS_KEY: pem("server.key"),
  };
  [tlsGateway, mtlsGateway] = await Promise.all([
    startService("gateway", env, { readyTimeoutMs: 180_000 }),
    startService("gateway", { ...env, UNCLIP_TLS_CLIENT_CA: pem("ca.pem") }, { readyTimeoutMs: 180_000 }),
  ]);
});
afterAll(async () => {
  await Promise.all([tlsGateway?.stop(), mtlsGateway?.stop()]);
  await s3?.stop();
  await nats?.stop();
  await rm(dir, { recursive: true, force: true });
});

const address = (g: ServiceProcess) => `127.0.0.1:${String(g.ready.grpcPort)}`;
/** `unclip status` of a job that does not exist: NOT_FOUND (69) proves that the call got through TLS to the gateway. */
const status_ = (g: ServiceProcess, flags: string[]) => runCli(["-a", address(g), ...flags, "status", randomUUID()], { cwd: repoRoot });

describe("gRPC TLS", () => {
  it("answers a CLI call that trusts its certificate with --cacert", async () => {
    expect(tlsGateway.ready.tls).toBe("server");
    const run = await status_(tlsGateway, ["--cacert", pem("server.pem")]);
    expect(run.stderr).toMatch(/does not exist/);
    expect(run.code).toBe(64 + status.NOT_FOUND);
  });

  it("refuses a plaintext client, and a client that does not trust the certificate", async () => {
    const plain = await status_(tlsGateway, []);
    expect(plain.code).toBe(64 + status.UNAVAILABLE);
    expect(plain.stderr).toMatch(/cannot reach the gateway|UNAVAILABLE/);
    const systemRoots = await status_(tlsGateway, ["--tls"]);
    expect(systemRoots.code).toBe(64 + status.UNAVAILABLE);
  });
});

describe("mutual TLS (UNCLIP_TLS_CLIENT_CA)", () => {
  it("answers a client whose certificate the CA signed", async () => {
    expect(mtlsGateway.ready.tls).toBe("mutual");
    const run = await status_(mtlsGateway, ["--cacert", pem("server.pem"), "--cert", pem("client.pem"), "--key", pem("client.key")]);
    expect(run.stderr).toMatch(/does not exist/);
    expect(run.code).toBe(64 + status.NOT_FOUND);
  });

  it("refuses a client without a certificate, or with one the CA did not sign", async () => {
    const none = await status_(mtlsGateway, ["--cacert", pem("server.pem")]);
    expect(none.code).toBe(64 + status.UNAVAILABLE);
    const stranger = await status_(mtlsGateway, ["--cacert", pem("server.pem"), "--cert", pem("server.pem"), "--key", pem("server.key")]);
    expect(stranger.code).toBe(64 + status.UNAVAILABLE);
  });
});

describe("NATS over TLS (UNCLIP_NATS_TLS_*)", () => {
  let tlsNats: NatsServerHandle;
  beforeAll(async () => {
    // The server certificate is self-signed, so it is its own CA for the client; client certificates from ca.pem.
    tlsNats = await startNatsServer({ tls: { certFile: pem("server.pem"), keyFile: pem("server.key"), caFile: pem("ca.pem") } });
  });
  afterAll(async () => {
    await tlsNats?.stop();
  });

  it("connects with the CA and a client certificate, and not without them", async () => {
    const conn = await connectFarm(
      { url: tlsNats.url, tls: { caFile: pem("server.pem"), certFile: pem("client.pem"), keyFile: pem("client.key") } },
      "tls-test",
    );
    expect(await conn.jsm.streams.info("FARM_TASKS")).toBeTruthy();
    await conn.nc.close();
    await expect(connectFarm({ url: tlsNats.url, tls: { caFile: pem("server.pem") } }, "tls-test-no-cert")).rejects.toThrow();
    await expect(connectFarm(tlsNats.url, "tls-test-plain")).rejects.toThrow();
  });

  it("a gateway configured with UNCLIP_NATS_TLS_CA, _CERT and _KEY starts on it", async () => {
    const gateway = await startService(
      "gateway",
      {
        UNCLIP_NATS_URL: tlsNats.url,
        UNCLIP_NATS_TLS_CA: pem("server.pem"),
        UNCLIP_NATS_TLS_CERT: pem("client.pem"),
        UNCLIP_NATS_TLS_KEY: pem("client.key"),
        UNCLIP_S3_ENDPOINT: s3.endpoint,
        UNCLIP_S3_ACCESS_KEY: s3.accessKey,
        UNCLIP_S3_SECRET_KEY: s3.secretKey,
        UNCLIP_METRICS_PORT: "0",
        UNCLIP_GRPC_PORT: "0",
      },
      { readyTimeoutMs: 180_000 },
    );
    try {
      const run = await runCli(["-a", address(gateway), "status", randomUUID()], { cwd: repoRoot });
      expect(run.code).toBe(64 + status.NOT_FOUND);
    } finally {
      await gateway.stop();
    }
  });
});
