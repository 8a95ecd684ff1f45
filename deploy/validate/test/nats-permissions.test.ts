import { spawn, type ChildProcess } from "node:child_process";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { jetstreamManager } from "@nats-io/jetstream";
import { connect, type NatsConnection } from "@nats-io/transport-node";
import { UnclipClient } from "@unclip/cli";
import { TASK_STREAM } from "@unclip/core";
import { findNatsServer, startS3Server, startService, type S3ServerHandle, type ServiceName, type ServiceProcess } from "@unclip/devstack";
import { BatchItemSchema, BatchState, create, GenerateRequestSchema, SamplingOptionsSchema, SubmitBatchRequestSchema, type JobEvent } from "@unclip/protocol";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { find } from "../src/k8s-objects.js";
import { renderKustomization, type K8sObject } from "../src/kustomize.js";

/**
 * The NATS users and permissions of deploy/k8s/nats.yaml, exercised by the real farm: nats-server runs the rendered
 * nats.conf (the cluster block removed: one server here, so UNCLIP_NATS_REPLICAS=1), the gateway and the three workers
 * log in with the users and placeholder passwords of the rendered Secrets, and a job, a cancelled job and a batch run
 * through. nats-server logs every permission violation; there must be none. Then the users are checked against what
 * they must not do.
 */
const repoRoot = fileURLToPath(new URL("../../../", import.meta.url));
const TINY_BUNDLE = path.join(repoRoot, "models/tiny-random");
const SERVICES: ServiceName[] = ["gateway", "prior-worker", "decoder-worker", "upscale-worker"];

let objects: K8sObject[];
let dir: string;
let nats: ChildProcess;
let natsUrl: string;
let natsLog = "";
let natsEnv: Record<string, string> = {};
let s3: S3ServerHandle;
const services: ServiceProcess[] = [];
let client: UnclipClient;

const secret = (name: string) => (find(objects, "Secret", name)!.stringData as Record<string, string>);

/** The single-server form of the rendered nats.conf: no cluster block, store and pid file in a temp dir. */
export function singleServerConf(conf: string, storeDir: string): string {
  const lines = conf.split("\n");
  const start = lines.findIndex((l) => /^cluster \{/.test(l));
  const end = lines.findIndex((l, i) => i > start && /^\}/.test(l));
  if (start < 0 || end < 0) throw new Error("nats.conf has no cluster block");
  lines.splice(start, end - start + 1);
  return lines
    .join("\n")
    .replace(/store_dir: .*/, `store_dir: ${JSON.stringify(storeDir)}`)
    .replace(/pid_file: .*/, `pid_file: ${JSON.stringify(path.join(path.dirname(storeDir), "nats.pid"))}`)
    .replace(/http_port: .*/, "");
}

async function startNats(conf: string, env: Record<string, string>): Promise<void> {
  await writeFile(path.join(dir, "nats.conf"), conf);
  nats = spawn(findNatsServer(), ["-c", path.join(dir, "nats.conf"), "-a", "127.0.0.1", "-p", "-1"], {
    env: { ...process.env, ...env },
    stdio: ["ignore", "ignore", "pipe"],
  });
  natsUrl = await new Promise<string>((resolve, reject) => {
    nats.stderr!.on("data", (c: Buffer) => {
      natsLog += c.toString();
      const m = /Listening for client connections on ([\d.]+:\d+)/.exec(natsLog);
      if (m && natsLog.includes("Server is ready")) resolve(`nats://${m[1]}`);
    });
    nats.once("exit", (code) => reject(new Error(`nats-server exited with ${code}:\n${natsLog}`)));
  });
}

beforeAll(async () => {
  objects = renderKustomization(path.join(repoRoot, "deploy/k8s"));
  dir = await mkdtemp(path.join(tmpdir(), "unclip-nats-perm-"));
  const conf = (find(objects, "ConfigMap", "nats-config")!.data as Record<string, string>)["nats.conf"]!;
  // The passwords as the StatefulSet passes them: each env var from its Secret key.
  const natsContainer = (find(objects, "StatefulSet", "nats")!.spec as any).template.spec.containers[0];
  const env: Record<string, string> = (natsEnv = { POD_NAME: "nats-test" });
  for (const e of natsContainer.env as { name: string; valueFrom?: { secretKeyRef?: { name: string; key: string } } }[]) {
    const ref = e.valueFrom?.secretKeyRef;
    if (ref) env[e.name] = secret(ref.name)[ref.key]!;
  }
  await startNats(singleServerConf(conf, path.join(dir, "js")), env);
  s3 = await startS3Server();
  const base = {
    UNCLIP_NATS_URL: natsUrl,
    UNCLIP_NATS_REPLICAS: "1",
    UNCLIP_S3_ENDPOINT: s3.endpoint,
    UNCLIP_S3_ACCESS_KEY: s3.accessKey,
    UNCLIP_S3_SECRET_KEY: s3.secretKey,
    UNCLIP_METRICS_PORT: "0",
  };
  for (const name of SERVICES) {
    const creds = secret(`${name}-credentials`);
    const own = { UNCLIP_NATS_USER: creds.UNCLIP_NATS_USER!, UNCLIP_NATS_PASSWORD: creds.UNCLIP_NATS_PASSWORD! };
    const extra: Record<string, string> = name === "gateway" ? { UNCLIP_GRPC_PORT: "0" } : { UNCLIP_BUNDLE: TINY_BUNDLE, UNCLIP_WORKER_NAME: `${name}-perm` };
    services.push(await startService(name, { ...base, ...own, ...extra }, { readyTimeoutMs: 180_000 }));
  }
  client = new UnclipClient(`127.0.0.1:${String(services[0]!.ready.grpcPort)}`);
}, 300_000);

afterAll(async () => {
  client?.close();
  await Promise.allSettled(services.map((s) => s.stop()));
  await s3?.stop();
  nats?.kill("SIGTERM");
  if (nats && nats.exitCode === null) await new Promise((r) => nats.once("exit", r));
  if (dir) await rm(dir, { recursive: true, force: true });
}, 120_000);

const violations = () => natsLog.split("\n").filter((l) => /violation/i.test(l));

/** Fails with the server's permission violations when the farm gets stuck (a denied subject shows up there). */
async function orViolations<T>(work: Promise<T>, ms: number): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const stuck = new Promise<never>((_, reject) => {
    timer = setTimeout(() => {
      const warnings = services.flatMap((p) => p.logs.filter((l) => Number(l.level) >= 40).map((l) => `${p.name}: ${JSON.stringify(l)}`));
      reject(new Error(`stuck after ${ms} ms; nats-server reported:\n${violations().join("\n")}\nservice warnings:\n${warnings.join("\n")}`));
    }, ms);
  });
  try {
    return await Promise.race([work, stuck]);
  } finally {
    clearTimeout(timer);
  }
}

async function collect(events: AsyncIterable<JobEvent>): Promise<JobEvent[]> {
  const out: JobEvent[] = [];
  for await (const e of events) out.push(e);
  return out;
}

const request = (prompt: string) =>
  create(GenerateRequestSchema, { prompt, size: 256, seed: 3n, sampling: create(SamplingOptionsSchema, { priorSteps: 2, decoderSteps: 2 }) });

describe("NATS users of deploy/k8s/nats.yaml, exercised by the farm", () => {
  it("runs a job through every pool with no permission violation", async () => {
    const events = await orViolations(collect(client.generate(request("a red circle"))), 120_000);
    expect(events.at(-1)!.event.case).toBe("completed");
    expect(events.some((e) => e.event.case === "image")).toBe(true);
    expect(violations()).toEqual([]);
  }, 180_000);

  it("cancels a job (farm.control.cancel) and watches it", async () => {
    const stream = client.generate(create(GenerateRequestSchema, { ...request("a blue square"), sampling: create(SamplingOptionsSchema, { priorSteps: 2, decoderSteps: 50 }) }));
    const it = stream[Symbol.asyncIterator]();
    const first = (await it.next()).value as JobEvent;
    await client.cancelJob(first.jobId);
    const job = await client.getJob(first.jobId);
    expect(job.jobId).toBe(first.jobId);
    stream.cancel();
    expect(violations()).toEqual([]);
  }, 120_000);

  it("runs a batch (the gateway's KV buckets) and lists its items", async () => {
    const items = [0, 1].map((i) =>
      create(BatchItemSchema, { customId: `perm-${i}`, request: { case: "generate", value: request(`a green star ${i}`) } }),
    );
    const batch = await client.submitBatch(create(SubmitBatchRequestSchema, { batchId: "perm-batch", items }));
    const deadline = Date.now() + 150_000;
    let b = batch;
    while (b.state === BatchState.RUNNING && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 250));
      b = await client.getBatch(batch.batchId);
    }
    expect(b.state).toBe(BatchState.COMPLETED);
    expect(b.succeeded).toBe(2);
    const page = await client.listBatchItems(batch.batchId, { pageSize: 10 });
    expect(page.items.map((i) => i.customId)).toEqual(["perm-0", "perm-1"]);
    expect(violations()).toEqual([]);
  }, 180_000);

  it("lets a worker do its dead-letter handling but nothing destructive, nor another pool's work", async () => {
    const creds = secret("decoder-worker-credentials");
    const nc = await connect({ servers: natsUrl, user: creds.UNCLIP_NATS_USER, pass: creds.UNCLIP_NATS_PASSWORD });
    try {
      const jsm = await jetstreamManager(nc);
      // Allowed (the answer may be "no message", but not a permission error).
      const got = await jsm.streams.getMessage(TASK_STREAM, { seq: 1 }).then(() => "", (e: Error) => e.message);
      expect(got).not.toMatch(/permission/i);
      await expect(jsm.streams.delete(TASK_STREAM)).rejects.toThrow(/permission/i);
      await expect(jsm.streams.purge(TASK_STREAM)).rejects.toThrow(/permission/i);
      await expect(jsm.consumers.delete(TASK_STREAM, "pool-decoder")).rejects.toThrow(/permission/i);
      await expect(jsm.consumers.info(TASK_STREAM, "pool-prior")).rejects.toThrow(/permission/i);
      await expect(nc.request(`$JS.API.CONSUMER.MSG.NEXT.${TASK_STREAM}.pool-prior`, JSON.stringify({ batch: 1 }), { timeout: 2000 })).rejects.toThrow(/permission/i);
    } finally {
      await nc.close();
    }
  });

  it("gives the monitor user read-only JetStream state", async () => {
    const nc: NatsConnection = await connect({
      servers: natsUrl,
      user: "monitor",
      pass: secret("nats-operator-credentials").MONITOR_NATS_PASSWORD,
    });
    try {
      const jsm = await jetstreamManager(nc);
      expect((await jsm.streams.info(TASK_STREAM)).config.name).toBe(TASK_STREAM);
      expect((await jsm.consumers.info(TASK_STREAM, "pool-decoder")).name).toBe("pool-decoder");
      await expect(jsm.streams.delete(TASK_STREAM)).rejects.toThrow(/permission/i);
      await expect(nc.request("farm.tasks.prior", "x", { timeout: 2000 })).rejects.toThrow(/permission/i);
    } finally {
      await nc.close();
    }
  });

  it("accepts the full clustered nats.conf (nats-server -t)", async () => {
    const conf = (find(objects, "ConfigMap", "nats-config")!.data as Record<string, string>)["nats.conf"]!;
    const file = path.join(dir, "cluster.conf");
    await writeFile(file, conf.replace(/store_dir: .*/, `store_dir: ${JSON.stringify(path.join(dir, "cluster-js"))}`));
    const env = { ...process.env, ...natsEnv };
    const out = await new Promise<{ code: number | null; text: string }>((resolve) => {
      const p = spawn(findNatsServer(), ["-t", "-c", file], { env, stdio: ["ignore", "pipe", "pipe"] });
      let text = "";
      p.stdout!.on("data", (c: Buffer) => (text += c.toString()));
      p.stderr!.on("data", (c: Buffer) => (text += c.toString()));
      p.once("exit", (code) => resolve({ code, text }));
    });
    expect(out.text).toMatch(/is valid/);
    expect(out.code).toBe(0);
  });

  it("refuses a wrong password", async () => {
    await expect(connect({ servers: natsUrl, user: "gateway", pass: "wrong", reconnect: false })).rejects.toThrow(/authorization/i);
  });
});
