import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { loadGatewayConfig } from "../src/config.js";

describe("gateway security settings", () => {
  let dir: string;
  let cert: string;
  let key: string;
  beforeAll(async () => {
    dir = await mkdtemp(path.join(tmpdir(), "gateway-config-"));
    cert = path.join(dir, "cert.pem");
    key = path.join(dir, "key.pem");
    await writeFile(cert, "CERT");
    await writeFile(key, "KEY");
  });
  afterAll(() => rm(dir, { recursive: true, force: true }));

  it("defaults to an open, plaintext farm with 1 h URLs and no tenant quota", () => {
    const c = loadGatewayConfig({});
    expect([c.apiKeysFile, c.tls, c.tenantMaxQueuedImages, c.urlTtlMaxS]).toEqual([undefined, undefined, undefined, 3600]);
  });

  it("reads the TLS files once, with the client CA for mutual TLS", () => {
    const c = loadGatewayConfig({ UNCLIP_TLS_CERT: cert, UNCLIP_TLS_KEY: key, UNCLIP_TLS_CLIENT_CA: cert });
    expect([c.tls?.cert.toString(), c.tls?.key.toString(), c.tls?.clientCa?.toString()]).toEqual(["CERT", "KEY", "CERT"]);
  });

  it.each([
    [{ UNCLIP_TLS_CERT: "CERT" }, /UNCLIP_TLS_CERT and UNCLIP_TLS_KEY go together/],
    [{ UNCLIP_TLS_CLIENT_CA: "CERT" }, /UNCLIP_TLS_CLIENT_CA \(mutual TLS\) needs UNCLIP_TLS_CERT and UNCLIP_TLS_KEY/],
    [{ UNCLIP_TLS_CERT: "/nonexistent/cert.pem", UNCLIP_TLS_KEY: "KEY" }, /UNCLIP_TLS_CERT=\/nonexistent\/cert.pem cannot be read: ENOENT/],
    [{ UNCLIP_URL_TTL_MAX_S: "86401" }, /UNCLIP_URL_TTL_MAX_S="86401" must be an integer from 60 to 86400/],
    [{ UNCLIP_TENANT_MAX_QUEUED_IMAGES: "4" }, /UNCLIP_TENANT_MAX_QUEUED_IMAGES=4 must be 0 \(no quota\) or from 8/],
    [{ UNCLIP_NATS_TLS_CERT: "CERT" }, /UNCLIP_NATS_TLS_CERT and UNCLIP_NATS_TLS_KEY go together/],
    [{ UNCLIP_NATS_TLS_CA: "/nonexistent/ca.pem" }, /UNCLIP_NATS_TLS_CA=\/nonexistent\/ca.pem: no such file/],
  ])("refuses %o, naming the variable", (env, message) => {
    const files = Object.fromEntries(Object.entries(env).map(([k, v]) => [k, v === "CERT" ? cert : v === "KEY" ? key : v]));
    expect(() => loadGatewayConfig(files)).toThrow(message);
  });

  it("passes NATS TLS files to the connection settings", () => {
    const c = loadGatewayConfig({ UNCLIP_NATS_TLS_CA: cert, UNCLIP_NATS_TLS_CERT: cert, UNCLIP_NATS_TLS_KEY: key });
    expect(c.nats.tls).toEqual({ caFile: cert, certFile: cert, keyFile: key });
  });
});
