import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import { spawn } from "node:child_process";
import { createHash, randomUUID } from "node:crypto";
import { createRequire } from "node:module";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import {
  credentials,
  loadPackageDefinition,
  status,
  type GrpcObject,
  type ServiceClientConstructor,
  type ServiceError,
} from "@grpc/grpc-js";
import { loadSync } from "@grpc/proto-loader";
import { UnclipClient } from "@unclip/cli";
import { loadCommonConfig, ObjectStore } from "@unclip/core";
import { repoRoot, startService } from "@unclip/devstack";
import {
  create,
  BatchItemSchema,
  BatchState,
  OutputOptionsSchema,
  SamplingOptionsSchema,
  SubmitBatchRequestSchema,
  toJsonString,
  type Job,
  type JobEvent,
} from "@unclip/protocol";
import { collect, generateRequest, startTestFarm, terminal } from "./farm-fixture.js";

type CliOutcome = { code: number | null; stdout: string; stderr: string };
const KEYS = { alpha: "alpha-key-4f1c9e", bravo: "bravo-key-77a0d2", charlie: "charlie-key-0b5e11", delta: "delta-key-c3d9f8" };
type Name = keyof typeof KEYS;
const sha = (key: string) => createHash("sha256").update(key).digest("hex");
const entry = (name: Name, extra: object = {}) => ({ name, key_sha256: sha(KEYS[name]), ...extra });

let env: Awaited<ReturnType<typeof startTestFarm>>;
let dir: string;
let keysFile: string;
const clients = new Map<string, UnclipClient>();
const as = (name: Name | "wrong") => {
  if (!clients.has(name)) {
    clients.set(name, new UnclipClient(env.farm.grpcAddress, { apiKey: name === "wrong" ? "not-a-key-of-this-farm" : KEYS[name] }));
  }
  return clients.get(name)!;
};

beforeAll(async () => {
  dir = await mkdtemp(path.join(tmpdir(), "auth-test-"));
  keysFile = path.join(dir, "keys.json");
  await writeFile(keysFile, JSON.stringify({ tenants: [entry("alpha"), entry("bravo"), entry("charlie", { max_queued_images: 8 })] }));
  env = await startTestFarm({
    serviceEnv: { gateway: { UNCLIP_API_KEYS_FILE: keysFile, UNCLIP_URL_TTL_MAX_S: "600" } },
    logDir: "/tmp/a-auth-logs",
  });
});
afterAll(async () => {
  for (const c of clients.values()) c.close();
  await env?.stop();
  await rm(dir, { recursive: true, force: true });
});

async function grpcError(call: Promise<unknown>): Promise<ServiceError> {
  try {
    await call;
  } catch (err) {
    return err as ServiceError;
  }
  throw new Error("the call succeeded");
}

/** Asserts that the job completed, showing its error otherwise. */
function expectCompleted(events: JobEvent[]): void {
  const end = terminal(events);
  expect(end.case === "completed" ? "completed" : `${end.case ?? "no end"}: ${(end.value as Job | undefined)?.error}`).toBe("completed");
}

const quick = (prompt: string, fields = {}) => generateRequest(prompt, { size: 64, ...fields });

describe("API keys", () => {
  it("refuses UnclipService calls without a key, or with a wrong one, as UNAUTHENTICATED", async () => {
    const none = await grpcError(collect(env.client.generate(quick("no key"))));
    expect(none.code).toBe(status.UNAUTHENTICATED);
    expect(none.details).toMatch(/needs an API key: send the metadata authorization: Bearer <key>/);
    expect((await grpcError(env.client.getJob(randomUUID()))).code).toBe(status.UNAUTHENTICATED);
    expect((await grpcError(env.client.getBatch("any-batch"))).code).toBe(status.UNAUTHENTICATED);
    const wrong = await grpcError(as("wrong").getJob(randomUUID()));
    expect(wrong.code).toBe(status.UNAUTHENTICATED);
    expect(wrong.details).toBe("the API key is not valid (unknown or revoked)");
    expect((await grpcError(collect(as("wrong").watchJob(randomUUID())))).code).toBe(status.UNAUTHENTICATED);
  });

  it("keeps health checks and reflection open for probes", async () => {
    const require = createRequire(import.meta.url);
    const load = (file: string, include: string, service: string) => {
      const pkg = loadPackageDefinition(loadSync(file, { includeDirs: [include], keepCase: true, enums: String })) as GrpcObject;
      return service.split(".").reduce<unknown>((o, k) => (o as Record<string, unknown>)[k], pkg) as ServiceClientConstructor;
    };
    const hdir = path.join(path.dirname(require.resolve("grpc-health-check/package.json")), "proto", "health", "v1");
    const health = new (load(path.join(hdir, "health.proto"), hdir, "grpc.health.v1.Health"))(
      env.farm.grpcAddress,
      credentials.createInsecure(),
    ) as unknown as { check(req: object, cb: (e: Error | null, r: { status: string }) => void): void; close(): void };
    const res = await new Promise<{ status: string }>((resolve, reject) =>
      health.check({ service: "farm.v1.UnclipService" }, (e, r) => (e ? reject(e) : resolve(r))),
    );
    expect(res.status).toBe("SERVING");
    health.close();
    const rroot = path.join(path.dirname(require.resolve("@grpc/reflection/package.json")), "build", "proto");
    const reflection = new (load(path.join(rroot, "grpc/reflection/v1/reflection.proto"), rroot, "grpc.reflection.v1.ServerReflection"))(
      env.farm.grpcAddress,
      credentials.createInsecure(),
    ) as unknown as { ServerReflectionInfo(): NodeJS.ReadWriteStream & { write(m: object): void; end(): void }; close(): void };
    const list = await new Promise<{ list_services_response: { service: { name: string }[] } }>((resolve, reject) => {
      const call = reflection.ServerReflectionInfo();
      call.on("data", resolve);
      call.on("error", reject);
      call.write({ list_services: "" });
      call.end();
    });
    expect(list.list_services_response.service.map((s) => s.name)).toContain("farm.v1.UnclipService");
    reflection.close();
  });
});

describe("tenants", () => {
  let alphaJob: string;
  beforeAll(async () => {
    const events = await collect(as("alpha").generate(quick("alpha's own circle")));
    expectCompleted(events);
    alphaJob = events[0]!.jobId;
  });

  it("records the tenant on the job, and its owner sees it", async () => {
    const job = await as("alpha").getJob(alphaJob);
    expect(job.tenant).toBe("alpha");
    expect(job.images).toHaveLength(1);
    expectCompleted(await collect(as("alpha").watchJob(alphaJob)));
  });

  it("answers another tenant's job id exactly as a missing one, on GetJob, WatchJob and CancelJob", async () => {
    const missing = randomUUID();
    const notFound = (id: string) => ({ code: status.NOT_FOUND, details: `job ${id} does not exist (or has expired)` });
    const pick = (e: ServiceError) => ({ code: e.code, details: e.details });
    expect(pick(await grpcError(as("bravo").getJob(alphaJob)))).toEqual(notFound(alphaJob));
    expect(pick(await grpcError(as("bravo").getJob(missing)))).toEqual(notFound(missing));
    expect(pick(await grpcError(collect(as("bravo").watchJob(alphaJob))))).toEqual(notFound(alphaJob));
    // Its owner would get FAILED_PRECONDITION (the job has ended): the other tenant learns nothing from the code.
    expect(pick(await grpcError(as("bravo").cancelJob(alphaJob)))).toEqual(notFound(alphaJob));
    expect((await grpcError(as("alpha").cancelJob(alphaJob))).code).toBe(status.FAILED_PRECONDITION);
  });

  it("gives each tenant its own request ids", async () => {
    const req = quick("same request id", { requestId: "shared-request-1", seed: 11n });
    const a = await collect(as("alpha").generate(req));
    const b = await collect(as("bravo").generate(req));
    expectCompleted(a);
    expectCompleted(b);
    expect(b[0]!.jobId).not.toBe(a[0]!.jobId);
    expect((await as("bravo").getJob(b[0]!.jobId)).tenant).toBe("bravo");
    // The same tenant retrying follows its first job.
    expect((await collect(as("alpha").generate(req)))[0]!.jobId).toBe(a[0]!.jobId);
  });

  it("keeps batches to their tenant, and runs their items as that tenant's jobs", async () => {
    const batchId = `auth-batch-${randomUUID().slice(0, 8)}`;
    const items = [create(BatchItemSchema, { customId: "one", request: { case: "generate", value: quick("a batch circle") } })];
    const submitted = await as("alpha").submitBatch(create(SubmitBatchRequestSchema, { batchId, items }));
    expect(submitted.batchId).toBe(batchId);
    const notFound = `batch ${batchId} does not exist (or has expired)`;
    for (const call of [as("bravo").getBatch(batchId), as("bravo").listBatchItems(batchId), as("bravo").cancelBatch(batchId)]) {
      const e = await grpcError(call);
      expect([e.code, e.details]).toEqual([status.NOT_FOUND, notFound]);
    }
    const taken = await grpcError(as("bravo").submitBatch(create(SubmitBatchRequestSchema, { batchId, items })));
    expect(taken.code).toBe(status.ALREADY_EXISTS);
    // Manifests: each tenant reads only its own manifests/<tenant>/ (the gateway reads with the farm's credentials).
    const store = new ObjectStore(loadCommonConfig(env.farm.env, 0).s3);
    const manifest = `manifests/alpha/${batchId}.jsonl`;
    await store.put(manifest, Buffer.from(`${toJsonString(BatchItemSchema, items[0]!)}\n`), "application/jsonl");
    for (const manifestKey of [manifest, `manifests/bravo/../alpha/${batchId}.jsonl`]) {
      const e = await grpcError(as("bravo").submitBatch(create(SubmitBatchRequestSchema, { batchId: `${batchId}-b`, manifestKey })));
      expect([e.code, e.details]).toEqual([
        status.INVALID_ARGUMENT,
        `manifest_key ${JSON.stringify(manifestKey)} must be an object under manifests/bravo/`,
      ]);
    }
    const fromManifest = await as("alpha").submitBatch(
      create(SubmitBatchRequestSchema, { batchId: `${batchId}-m`, manifestKey: manifest }),
    );
    expect(fromManifest.total).toBe(1);
    await vi.waitFor(async () => expect((await as("alpha").getBatch(batchId)).state).toBe(BatchState.COMPLETED), {
      timeout: 60_000,
      interval: 250,
    });
    const [item] = await as("alpha")
      .listBatchItems(batchId)
      .then((p) => p.items);
    expect((await as("alpha").getJob(item!.jobId)).tenant).toBe("alpha");
    expect((await grpcError(as("bravo").getJob(item!.jobId))).code).toBe(status.NOT_FOUND);
  });

  it("refuses a job over the tenant's quota of queued images with RESOURCE_EXHAUSTED, on every gateway, until its images finish", async () => {
    // A second gateway, as a farm runs several: it counts the jobs admitted through the first one too.
    const gateway2 = await startService("gateway", { ...env.farm.env, UNCLIP_GRPC_PORT: "0", UNCLIP_API_KEYS_FILE: keysFile });
    const elsewhere = new UnclipClient(`127.0.0.1:${String(gateway2.ready.grpcPort)}`, { apiKey: KEYS.charlie });
    try {
      // Eight images with long sampling fill charlie's quota of 8 for far longer than the next calls take.
      const slow = quick("charlie's slow job", {
        numImages: 8,
        sampling: create(SamplingOptionsSchema, { priorSteps: 1000, decoderSteps: 1000 }),
      });
      const running = as("charlie").generate(slow)[Symbol.asyncIterator]();
      const queued = (await running.next()).value!;
      expect(queued.event.case).toBe("queued");
      const over = await grpcError(collect(as("charlie").generate(quick("one more"))));
      expect(over.code).toBe(status.RESOURCE_EXHAUSTED);
      expect(over.details).toMatch(
        /tenant charlie has 8 image\(s\) queued or rendering; 1 more would pass its quota of 8 \(max_queued_images\)/,
      );
      const viaOther = await grpcError(collect(elsewhere.generate(quick("one more, elsewhere"))));
      expect([viaOther.code, viaOther.details]).toEqual([status.RESOURCE_EXHAUSTED, over.details]);
      // Another tenant is not held back by charlie's quota (its job is admitted; it need not be followed to the end).
      const bravo = as("bravo").generate(quick("bravo meanwhile"));
      expect((await bravo[Symbol.asyncIterator]().next()).value!.event.case).toBe("queued");
      bravo.cancel();
      await as("charlie").cancelJob(queued.jobId);
      await vi.waitFor(async () => expectCompleted(await collect(as("charlie").generate(quick("after the cancel")))), {
        timeout: 30_000,
        interval: 200,
      });
    } finally {
      elsewhere.close();
      await gateway2.stop();
    }
  });
});

describe("presigned URLs", () => {
  it("refuses a lifetime over UNCLIP_URL_TTL_MAX_S and defaults to the cap when it is under an hour", async () => {
    const long = await grpcError(
      collect(as("alpha").generate(quick("long links", { output: create(OutputOptionsSchema, { urlTtlSeconds: 601 }) }))),
    );
    expect(long.code).toBe(status.INVALID_ARGUMENT);
    expect(long.details).toBe("url_ttl_seconds is 601; this farm's limit is 600 s");
    const events = await collect(as("alpha").generate(quick("default links")));
    expectCompleted(events);
    const job = terminal(events);
    const url = new URL((job.value as { images: { url: string }[] }).images[0]!.url);
    expect(url.searchParams.get("X-Amz-Expires")).toBe("600");
    const fetched = await as("alpha").getJob(events[0]!.jobId);
    expect(new URL(fetched.images[0]!.url).searchParams.get("X-Amz-Expires")).toBe("600");
  });
});

describe("the CLI", () => {
  const unclip = (args: string[], extraEnv: Record<string, string> = {}) =>
    new Promise<CliOutcome>((resolve) => {
      const childEnv: Record<string, string | undefined> = { ...process.env, ...extraEnv };
      if (!("UNCLIP_API_KEY" in extraEnv)) delete childEnv.UNCLIP_API_KEY;
      const child = spawn(
        process.execPath,
        ["--import", "tsx", path.join(repoRoot, "packages/cli/src/main.ts"), "-a", env.farm.grpcAddress, ...args],
        { cwd: repoRoot, env: childEnv, stdio: ["ignore", "pipe", "pipe"] },
      );
      let stdout = "";
      let stderr = "";
      child.stdout.on("data", (d: Buffer) => (stdout += d));
      child.stderr.on("data", (d: Buffer) => (stderr += d));
      child.on("close", (code) => resolve({ code, stdout, stderr }));
    });

  it("sends --api-key or UNCLIP_API_KEY on every call and never prints the key", async () => {
    const out = path.join(dir, "cli-out");
    const render = await unclip(["--api-key", KEYS.alpha, "render", "a cli circle", "-s", "64", "--seed", "3", "-o", out]);
    expect(render.code).toBe(0);
    const jobId = /[0-9a-f]{8}-[0-9a-f-]{27}/.exec(render.stderr)![0];
    expect((await as("alpha").getJob(jobId)).tenant).toBe("alpha");

    const byEnv = await unclip(["status", jobId, "--json"], { UNCLIP_API_KEY: KEYS.alpha });
    expect(byEnv.code).toBe(0);
    expect(JSON.parse(byEnv.stdout)).toMatchObject({ jobId, state: "JOB_STATE_SUCCEEDED", tenant: "alpha" });

    const none = await unclip(["status", jobId]);
    expect(none.code).toBe(64 + status.UNAUTHENTICATED);
    expect(none.stderr).toMatch(/needs an API key.*\(UNAUTHENTICATED\)/);
    const other = await unclip(["status", jobId], { UNCLIP_API_KEY: KEYS.bravo });
    expect(other.code).toBe(64 + status.NOT_FOUND);
    const wrong = await unclip(["--api-key", "not-a-key-of-this-farm", "status", jobId]);
    expect(wrong.code).toBe(64 + status.UNAUTHENTICATED);
    const bad = await unclip(["--api-key", "two words", "status", jobId]);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toMatch(/--api-key: an API key is printable ASCII without spaces/);
    for (const run of [render, byEnv, none, other, wrong, bad]) {
      expect(run.stdout + run.stderr).not.toContain(KEYS.alpha);
      expect(run.stdout + run.stderr).not.toContain(KEYS.bravo);
      expect(run.stdout + run.stderr).not.toContain("two words");
    }
  });
});

describe("keys file reload", () => {
  it("lets a tenant added to the file in without a restart, and shuts a removed one out", async () => {
    expect((await grpcError(as("delta").getJob(randomUUID()))).code).toBe(status.UNAUTHENTICATED);
    await writeFile(keysFile, JSON.stringify({ tenants: [entry("alpha"), entry("charlie", { max_queued_images: 8 }), entry("delta")] }));
    await vi.waitFor(async () => expect((await grpcError(as("delta").getJob(randomUUID()))).code).toBe(status.NOT_FOUND), {
      timeout: 15_000,
      interval: 200,
    });
    expect((await grpcError(as("bravo").getJob(randomUUID()))).code).toBe(status.UNAUTHENTICATED);
    // A broken file keeps the last good set.
    await writeFile(keysFile, "{ not json");
    await new Promise((r) => setTimeout(r, 2_500));
    expect((await grpcError(as("delta").getJob(randomUUID()))).code).toBe(status.NOT_FOUND);
  });
});
