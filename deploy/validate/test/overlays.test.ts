import path from "node:path";
import { describe, expect, it } from "vitest";
import { find } from "../src/k8s-objects.js";
import { renderKustomization, type K8sObject } from "../src/kustomize.js";
import { checkTarget, repoRoot, TARGETS } from "../src/main.js";
import { policyProblems } from "../src/policy.js";
import { schemaProblems } from "../src/schema-check.js";

/** The deploy check on the real overlays, and proof that each of its rules catches what it is meant to catch. */
describe.each(TARGETS)("$dir", (target) => {
  it("renders, validates against the schemas and follows the policy", () => {
    const r = checkTarget(target);
    expect(r.problems).toEqual([]);
    expect(r.objects.length).toBeGreaterThan(30);
  });
});

const gpu = () => renderKustomization(path.join(repoRoot, "deploy/overlays/gpu"));
const problems = (objects: K8sObject[], isGpu = true) => [
  ...objects.flatMap(schemaProblems),
  ...policyProblems(objects, { gpu: isGpu, repoRoot }),
];
const worker = (objects: K8sObject[], name = "decoder-worker") => (find(objects, "Deployment", name)!.spec as any).template.spec.containers[0];

describe("the deploy check catches", () => {
  it("a missing probe, missing limits and a thread count that is not the CPU request", () => {
    const o = gpu();
    delete worker(o).livenessProbe;
    delete worker(o, "gateway").resources.limits.cpu;
    worker(o).env.find((e: { name: string }) => e.name === "UNCLIP_INTRA_OP_THREADS").valueFrom = undefined;
    worker(o).env.find((e: { name: string }) => e.name === "UNCLIP_INTRA_OP_THREADS").value = "8";
    const p = problems(o);
    expect(p).toContainEqual(expect.stringMatching(/decoder-worker container decoder-worker: no livenessProbe/));
    expect(p).toContainEqual(expect.stringMatching(/gateway: no resources.limits.cpu/));
    expect(p).toContainEqual(expect.stringMatching(/UNCLIP_INTRA_OP_THREADS must equal the CPU request \(2\)/));
  });

  it("a workload without a PodDisruptionBudget", () => {
    const o = gpu().filter((x) => !(x.kind === "PodDisruptionBudget" && x.metadata.name === "nats"));
    expect(problems(o)).toContainEqual(expect.stringMatching(/StatefulSet\/unclip\/nats: no PodDisruptionBudget/));
  });

  it("a namespace opened up (no default deny), DNS cut off, and a worker that can reach the gateway", () => {
    const o = gpu().filter((x) => x.metadata.name !== "default-deny" && x.metadata.name !== "dns-egress");
    const p = problems(o);
    expect(p).toContainEqual("network: minio may connect to the internet");
    expect(p).toContainEqual("network: gateway cannot reach the cluster DNS");
    const farm = find(o, "NetworkPolicy", "farm-egress")!.spec as any;
    farm.egress.push({ to: [{ podSelector: { matchLabels: { "app.kubernetes.io/name": "gateway" } } }] });
    expect(problems(o)).toContainEqual("network: prior-worker -> gateway:50051 is allowed, should be denied");
  });

  it("a lagThreshold or target out of step with UNCLIP_MAX_BATCH (batch + prefetch is not the rule)", () => {
    const o = gpu();
    const spec = find(o, "ScaledObject", "upscale-worker")!.spec as any;
    spec.triggers[1].metadata.lagThreshold = "8";
    spec.advanced.scalingModifiers.target = "8";
    const p = problems(o);
    expect(p).toContainEqual(expect.stringMatching(/upscale-worker: trigger batch lagThreshold 8 != UNCLIP_MAX_BATCH = 4/));
    expect(p).toContainEqual(expect.stringMatching(/upscale-worker: scalingModifiers.target 8 != UNCLIP_MAX_BATCH = 4/));
  });

  it("a real password, an unknown field, an unknown kind, an unknown UNCLIP_ variable", () => {
    const o = gpu();
    (find(o, "Secret", "gateway-credentials")!.stringData as any).UNCLIP_NATS_PASSWORD = "hunter2";
    worker(o).readynessProbe = {};
    worker(o).env.push({ name: "UNCLIP_TYPO", value: "1" });
    o.push({ apiVersion: "v1", kind: "Pod", metadata: { name: "stray", namespace: "unclip" } });
    const p = problems(o);
    expect(p).toContainEqual(expect.stringMatching(/UNCLIP_NATS_PASSWORD must be a CHANGE-ME-/));
    expect(p).toContainEqual(expect.stringMatching(/unknown field spec.template.spec.containers\[0\].readynessProbe/));
    expect(p).toContainEqual(expect.stringMatching(/Pod\/unclip\/stray: no schema/));
    expect(p).toContainEqual(expect.stringMatching(/UNCLIP_TYPO is not a variable the farm knows/));
  });

  it("the wrong accelerator for the overlay and the tiny test bundle", () => {
    const cpu = renderKustomization(path.join(repoRoot, "deploy/overlays/cpu"));
    expect(problems(cpu, true)).toContainEqual(expect.stringMatching(/prior-worker: must request and limit nvidia.com\/gpu/));
    expect(problems(gpu(), false)).toContainEqual(expect.stringMatching(/decoder-worker: requests a GPU/));
    worker(cpu, "prior-worker").env.find((e: { name: string }) => e.name === "UNCLIP_BUNDLE").value = "models/tiny-random";
    expect(problems(cpu, false)).toContainEqual(expect.stringMatching(/prior-worker: UNCLIP_BUNDLE is models\/tiny-random/));
  });

  it("NATS users that drift from the services' Secrets or from each other", () => {
    const o = gpu();
    (find(o, "Secret", "upscale-worker-credentials")!.stringData as any).UNCLIP_NATS_USER = "upscaler";
    const cm = find(o, "ConfigMap", "nats-config")!.data as Record<string, string>;
    cm["nats.conf"] = cm["nats.conf"]!.replace('"$JS.ACK.FARM_TASKS.pool-decoder.>"', '"$JS.ACK.>"');
    const p = problems(o);
    expect(p).toContainEqual(expect.stringMatching(/upscale-worker-credentials names NATS user upscaler/));
    expect(p).toContainEqual("nats: decoder-worker's permissions are not prior-worker's for pool decoder");
  });
});
