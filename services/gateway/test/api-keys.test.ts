import { createHash } from "node:crypto";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { Metadata, status } from "@grpc/grpc-js";
import { createLogger, FarmError } from "@unclip/core";
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { ApiKeys, ApiKeysError, parseApiKeys } from "../src/api-keys.js";
import { TenantAuth } from "../src/tenant-auth.js";

// The real timingSafeEqual, wrapped so that the test can count the comparisons lookup makes.
vi.mock("node:crypto", async (importOriginal) => {
  const crypto = await importOriginal<typeof import("node:crypto")>();
  return { ...crypto, timingSafeEqual: vi.fn(crypto.timingSafeEqual) };
});
const { timingSafeEqual } = await import("node:crypto");

const sha = (key: string) => createHash("sha256").update(key).digest("hex");
const log = createLogger("api-keys-test", "silent");
const file = (tenants: unknown[]) => JSON.stringify({ tenants });

describe("parseApiKeys", () => {
  it("reads names, digests and quotas", () => {
    const entries = parseApiKeys(
      file([
        { name: "alpha", key_sha256: sha("a"), max_queued_images: 16 },
        { name: "bravo", key_sha256: sha("b").toUpperCase() },
      ]),
      "F",
    );
    expect(entries.map((e) => [e.name, e.maxQueuedImages, e.digest.toString("hex")])).toEqual([
      ["alpha", 16, sha("a")],
      ["bravo", undefined, sha("b")],
    ]);
  });

  it.each([
    ["not json", "{", /F is not JSON/],
    ["no tenants array", JSON.stringify({ tenant: [] }), /F must be an object \{"tenants"/],
    ["a bad name", file([{ name: "Alpha Team", key_sha256: sha("a") }]), /F: tenants\[0\]: name "Alpha Team" must be/],
    ["a plain-text key", file([{ name: "alpha", key_sha256: "s3cret" }]), /tenants\[0\] \(alpha\): key_sha256 must be the 64 hex digits/],
    [
      "a duplicate name",
      file([
        { name: "a", key_sha256: sha("1") },
        { name: "a", key_sha256: sha("2") },
      ]),
      /tenants\[1\]: tenant a appears twice/,
    ],
    [
      "a shared key",
      file([
        { name: "a", key_sha256: sha("1") },
        { name: "b", key_sha256: sha("1") },
      ]),
      /tenants\[1\] \(b\): key_sha256 is another tenant's key too/,
    ],
    ["a misspelt field", file([{ name: "a", key_sha256: sha("1"), max_queue_images: 9 }]), /unknown field\(s\) max_queue_images/],
    [
      "a quota below one job",
      file([{ name: "a", key_sha256: sha("1"), max_queued_images: 4 }]),
      /max_queued_images 4 must be a whole number from 8/,
    ],
  ])("refuses %s, naming the file and the entry", (_, text, message) => {
    expect(() => parseApiKeys(text, "F")).toThrow(ApiKeysError);
    expect(() => parseApiKeys(text, "F")).toThrow(message);
  });
});

describe("ApiKeys", () => {
  let dir: string;
  let keys: ApiKeys | undefined;
  beforeEach(async () => {
    dir = await mkdtemp(path.join(tmpdir(), "api-keys-"));
  });
  afterEach(async () => {
    keys?.close();
    await rm(dir, { recursive: true, force: true });
  });

  it("finds the tenant of a key, comparing every entry in constant time", async () => {
    const p = path.join(dir, "keys.json");
    await writeFile(p, file(["alpha", "bravo", "charlie"].map((name) => ({ name, key_sha256: sha(`key-${name}`) }))));
    keys = new ApiKeys(p, log);
    const compare = vi.mocked(timingSafeEqual);
    compare.mockClear();
    expect(keys.lookup("key-alpha")?.name).toBe("alpha");
    // A match on the first entry still compares the rest: the time does not say which entry matched.
    expect(compare).toHaveBeenCalledTimes(3);
    compare.mockClear();
    expect(keys.lookup("key-delta")).toBeUndefined();
    expect(compare).toHaveBeenCalledTimes(3);
    expect(keys.lookup(sha("key-bravo"))).toBeUndefined(); // the digest itself is not a key
  });

  it("names the variable when the file cannot be read", () => {
    expect(() => new ApiKeys(path.join(dir, "missing.json"), log)).toThrow(/UNCLIP_API_KEYS_FILE .*missing\.json cannot be read: ENOENT/);
  });

  it("reloads on change, and keeps the last good set when the new file is bad", async () => {
    const p = path.join(dir, "keys.json");
    await writeFile(p, file([{ name: "alpha", key_sha256: sha("ka") }]));
    keys = new ApiKeys(p, log, { pollMs: 50, debounceMs: 20 });
    expect(keys.lookup("kb")).toBeUndefined();
    await writeFile(
      p,
      file([
        { name: "alpha", key_sha256: sha("ka") },
        { name: "bravo", key_sha256: sha("kb") },
      ]),
    );
    await vi.waitFor(() => expect(keys!.lookup("kb")?.name).toBe("bravo"), { timeout: 5_000, interval: 25 });
    await writeFile(p, "{ half-written");
    await new Promise((r) => setTimeout(r, 400));
    expect(keys.lookup("kb")?.name).toBe("bravo");
    await writeFile(p, file([{ name: "bravo", key_sha256: sha("kb") }]));
    await vi.waitFor(() => expect(keys!.lookup("ka")).toBeUndefined(), { timeout: 5_000, interval: 25 });
    expect(keys.lookup("kb")?.name).toBe("bravo");
  });
});

describe("TenantAuth", () => {
  const meta = (...values: string[]) => {
    const m = new Metadata();
    for (const v of values) m.add("authorization", v);
    return m;
  };
  const code = (f: () => unknown) => {
    try {
      f();
    } catch (err) {
      return [(err as FarmError).code, (err as FarmError).message];
    }
    return "no error";
  };

  it('lets everyone in as tenant "" on an open farm', () => {
    const auth = new TenantAuth(undefined);
    expect(auth.caller(meta()).tenant).toBe("");
    expect(auth.owns({ tenant: "" }, "alpha")).toBe(true);
  });

  it("needs one valid Bearer key when keys are on, and never echoes it", async () => {
    const dir = await mkdtemp(path.join(tmpdir(), "tenant-auth-"));
    const p = path.join(dir, "keys.json");
    await writeFile(p, file([{ name: "alpha", key_sha256: sha("good-key") }]));
    const keys = new ApiKeys(p, log);
    try {
      const auth = new TenantAuth(keys);
      expect(auth.caller(meta("Bearer good-key")).tenant).toBe("alpha");
      expect(auth.caller(meta("bearer  good-key")).tenant).toBe("alpha");
      expect(code(() => auth.caller(meta()))).toEqual([status.UNAUTHENTICATED, expect.stringMatching(/needs an API key/)]);
      expect(code(() => auth.caller(meta("good-key")))).toEqual([status.UNAUTHENTICATED, expect.stringMatching(/Bearer <key>/)]);
      expect(code(() => auth.caller(meta("Bearer good-key", "Bearer x")))).toEqual([
        status.UNAUTHENTICATED,
        expect.stringMatching(/one value/),
      ]);
      const wrong = code(() => auth.caller(meta("Bearer bad-key")));
      expect(wrong).toEqual([status.UNAUTHENTICATED, "the API key is not valid (unknown or revoked)"]);
      expect(auth.owns({ tenant: "alpha" }, "alpha")).toBe(true);
      expect(auth.owns({ tenant: "alpha" }, "bravo")).toBe(false);
      expect(auth.owns({ tenant: "alpha" }, "")).toBe(false);
    } finally {
      keys.close();
      await rm(dir, { recursive: true, force: true });
    }
  });
});
