import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createRequire } from "node:module";
import path from "node:path";
import { credentials, loadPackageDefinition, type GrpcObject, type ServiceClientConstructor } from "@grpc/grpc-js";
import { loadSync } from "@grpc/proto-loader";
import { execFileSync, spawnSync } from "node:child_process";
import type { SupervisedService } from "@unclip/devstack";
import type { Pool } from "@unclip/protocol";
import { collect, generateRequest, startTestFarm } from "./farm-fixture.js";

/** Prometheus' own linter, from Debian's prometheus package (.ci/run installs it). */
const promtool = (() => {
  try {
    return execFileSync("sh", ["-c", "command -v promtool"], { encoding: "utf8" }).trim() || undefined;
  } catch {
    return undefined;
  }
})();

const require = createRequire(import.meta.url);

let env: Awaited<ReturnType<typeof startTestFarm>>;
beforeAll(async () => {
  env = await startTestFarm();
});
afterAll(async () => {
  await env?.stop();
});

function loadClient(protoFile: string, includeDir: string, service: string): ServiceClientConstructor {
  const pkg = loadPackageDefinition(loadSync(protoFile, { includeDirs: [includeDir], keepCase: true, enums: String })) as GrpcObject;
  return service.split(".").reduce<unknown>((o, k) => (o as Record<string, unknown>)[k], pkg) as ServiceClientConstructor;
}

describe("a client with nothing but the server", () => {
  it("answers the standard health check", async () => {
    const dir = path.join(path.dirname(require.resolve("grpc-health-check/package.json")), "proto", "health", "v1");
    const Health = loadClient(path.join(dir, "health.proto"), dir, "grpc.health.v1.Health");
    const client = new Health(env.farm.grpcAddress, credentials.createInsecure()) as unknown as {
      check(req: object, cb: (e: Error | null, r: { status: string }) => void): void;
      close(): void;
    };
    for (const service of ["", "farm.v1.UnclipService"]) {
      const res = await new Promise<{ status: string }>((resolve, reject) =>
        client.check({ service }, (e, r) => (e ? reject(e) : resolve(r))),
      );
      expect(res.status).toBe("SERVING");
    }
    client.close();
  });

  it("discovers UnclipService and its messages through server reflection", async () => {
    const root = path.join(path.dirname(require.resolve("@grpc/reflection/package.json")), "build", "proto");
    const Reflection = loadClient(path.join(root, "grpc/reflection/v1/reflection.proto"), root, "grpc.reflection.v1.ServerReflection");
    const client = new Reflection(env.farm.grpcAddress, credentials.createInsecure()) as unknown as {
      ServerReflectionInfo(): NodeJS.ReadWriteStream & { write(m: object): void; end(): void };
      close(): void;
    };
    const ask = (request: object) =>
      new Promise<Record<string, unknown>>((resolve, reject) => {
        const call = client.ServerReflectionInfo();
        call.on("data", (d: Record<string, unknown>) => resolve(d));
        call.on("error", reject);
        call.write(request);
        call.end();
      });
    const list = (await ask({ list_services: "" })) as { list_services_response: { service: { name: string }[] } };
    expect(list.list_services_response.service.map((s) => s.name)).toContain("farm.v1.UnclipService");
    const file = (await ask({ file_containing_symbol: "farm.v1.UnclipService" })) as {
      file_descriptor_response: { file_descriptor_proto: Buffer[] };
    };
    const text = Buffer.concat(file.file_descriptor_response.file_descriptor_proto).toString("latin1");
    // The file that defines the service, and the message types it uses.
    expect(text).toContain("farm/v1/api.proto");
    expect(text).toContain("UnclipService");
    expect(text).toContain("GenerateRequest");
    // The image manipulations, with their requests.
    for (const name of ["InterpolateImages", "InterpolateImagesRequest", "TransformImage", "TransformImageRequest"])
      expect(text).toContain(name);
    client.close();
  });

  it("every process serves Prometheus metrics with the farm's series", async () => {
    await collect(env.client.generate(generateRequest("a red circle", { size: 256 })));
    const scrapeOne = async (s: SupervisedService) => {
      const res = await fetch(`http://127.0.0.1:${String(s.current.ready.metricsPort)}/metrics`);
      expect(res.status, s.name).toBe(200);
      return res.text();
    };
    // Every process of a pool (UNCLIP_FARM_WORKERS may start several), one text after the other.
    const scrape = async (pool: Pool | "gateway") =>
      (await Promise.all((pool === "gateway" ? [env.farm.gateway] : env.farm.workers(pool)).map(scrapeOne))).join("\n");
    const total = (values: number[]) => values.reduce((a, b) => a + b, 0);
    // Prometheus text lines: the metric, its labels in any order, a value.
    const series = (text: string, name: string, labels: Record<string, string>) =>
      text
        .split("\n")
        .filter((l) => l.startsWith(`${name}{`) && Object.entries(labels).every(([k, v]) => l.includes(`${k}="${v}"`)))
        .map((l) => Number(l.split(" ").pop()));
    for (const s of env.farm.services()) {
      const res = await fetch(`http://127.0.0.1:${String(s.current.ready.metricsPort)}/healthz`);
      expect(res.status, s.name).toBe(200);
    }
    const gateway = await scrape("gateway");
    expect(series(gateway, "unclip_grpc_requests_total", { method: "Generate", code: "OK" })[0]).toBeGreaterThan(0);
    expect(series(gateway, "unclip_queue_backlog_tasks", { pool: "decoder" })).toEqual([0, 0]);
    expect(series(gateway, "unclip_queue_backlog_tasks", { pool: "decoder", lane: "batch" })).toEqual([0]);
    expect(gateway).not.toMatch(/nodejs_active_handles_total/);
    for (const pool of ["prior", "decoder"] as const) {
      const text = await scrape(pool);
      expect(total(series(text, "unclip_tasks_total", { pool, stage: pool, outcome: "ok", service: `${pool}-worker` }))).toBeGreaterThan(0);
      expect(text).toContain("unclip_stage_duration_seconds_bucket");
      expect(text).toContain("unclip_queue_wait_seconds_bucket");
      expect(text).toContain("unclip_batch_size_bucket");
      expect(text).toContain("unclip_stage_image_seconds_bucket");
      expect(text).toMatch(new RegExp(`^unclip_execution_provider_info\\{[^}]*pool="${pool}"[^}]*provider="cpu"[^}]*\\} 1$`, "m"));
    }
    expect(total(series(await scrape("upscale"), "unclip_job_duration_seconds_count", { kind: "generate", outcome: "succeeded" }))).toBe(1);
  });

  it.skipIf(!promtool)("every process's metrics pass `promtool check metrics`", async () => {
    await collect(env.client.generate(generateRequest("a blue square", { size: 1024 })));
    for (const s of env.farm.services()) {
      const text = await (await fetch(`http://127.0.0.1:${String(s.current.ready.metricsPort)}/metrics`)).text();
      const lint = spawnSync(promtool!, ["check", "metrics"], { input: text, encoding: "utf8" });
      expect(`${lint.stdout}${lint.stderr}`, s.name).toBe("");
      expect(lint.status, s.name).toBe(0);
    }
  });
});
