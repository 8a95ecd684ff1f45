import { existsSync } from "node:fs";
import path from "node:path";
import { KNOWN_VARIABLES, OTHER_TOOLS_VARIABLES } from "@unclip/core";
import { objectId, parseImage, type K8sObject } from "./kustomize.js";
import {
  cpuCores,
  envValue,
  find,
  podTemplates,
  selects,
  WORKLOAD_KINDS,
  type Container,
  type LabelSelector,
  type PodTemplateOwner,
} from "./k8s-objects.js";
import { NetworkPolicies, podEndpoints, type Endpoint } from "./network-policy.js";

/**
 * The farm's deployment rules, checked on every rendered overlay. Each function returns human-readable problems;
 * an empty list means the overlay follows the rule. README.md (deploy/k8s) explains the reasons.
 */
export interface OverlayExpectation {
  /** Model workers get a GPU and the CUDA image (deploy/overlays/gpu), or neither (cpu, base). */
  gpu: boolean;
  repoRoot: string;
}

const FARM_SERVICES = ["gateway", "prior-worker", "decoder-worker", "upscale-worker"] as const;
const POOLS = ["prior", "decoder", "upscale"] as const;
const THREAD_VARIABLES = ["UNCLIP_INTRA_OP_THREADS", "VIPS_CONCURRENCY", "GOMAXPROCS"];

export function policyProblems(objects: K8sObject[], expect: OverlayExpectation): string[] {
  return [
    ...containerRules(objects),
    ...disruptionBudgets(objects),
    ...references(objects),
    ...placeholderSecrets(objects),
    ...networkRules(objects),
    ...kedaRules(objects),
    ...natsRules(objects),
    ...minioRules(objects),
    ...farmConfig(objects, expect),
    ...acceleratorRules(objects, expect),
  ];
}

const where = (t: PodTemplateOwner, c: Container) => `${objectId(t.owner)} container ${c.name}`;
const isFarmImage = (c: Container) => /(^|\/)unclip-farm(-cuda)?(:|@|$)/.test(c.image ?? "");
const isGoServer = (c: Container) => /(^|\/)(nats|minio\/minio)(:|@|$)/.test(c.image ?? "");

/** Probes, requests and limits, thread counts matching the CPU request, pinned images. */
export function containerRules(objects: K8sObject[]): string[] {
  const problems: string[] = [];
  for (const t of podTemplates(objects)) {
    for (const c of [...t.spec.containers, ...(t.spec.initContainers ?? [])]) {
      const at = where(t, c);
      if (t.longRunning && t.spec.containers.includes(c)) {
        if (!c.readinessProbe) problems.push(`${at}: no readinessProbe`);
        if (!c.livenessProbe) problems.push(`${at}: no livenessProbe`);
      }
      for (const kind of ["requests", "limits"] as const) {
        for (const r of ["cpu", "memory"]) {
          if (c.resources?.[kind]?.[r] === undefined) problems.push(`${at}: no resources.${kind}.${r}`);
        }
      }
      const ref = parseImage(c.image ?? "");
      if (!ref.tag && !ref.digest) problems.push(`${at}: image ${c.image} has no tag (the overlay's images: should set one)`);
      if (ref.tag === "latest") problems.push(`${at}: image ${c.image} uses the tag latest`);

      const cores = cpuCores(c.resources?.requests?.cpu);
      const required = !t.longRunning
        ? []
        : isFarmImage(c)
          ? ["VIPS_CONCURRENCY", ...(t.labels["app.kubernetes.io/component"] === "model-worker" ? ["UNCLIP_INTRA_OP_THREADS"] : [])]
          : isGoServer(c)
            ? ["GOMAXPROCS"]
            : [];
      for (const name of required) {
        if (!c.env?.some((e) => e.name === name)) problems.push(`${at}: ${name} not set (must equal the CPU request)`);
      }
      for (const e of c.env ?? []) {
        if (!THREAD_VARIABLES.includes(e.name)) continue;
        if (cores === undefined || !Number.isInteger(cores)) {
          problems.push(`${at}: ${e.name} is set but the CPU request ${c.resources?.requests?.cpu} is not a whole number of cores`);
          continue;
        }
        const rf = e.valueFrom?.resourceFieldRef;
        const ok = rf
          ? rf.resource === "requests.cpu" && String(rf.divisor ?? "1") === "1" && (!rf.containerName || rf.containerName === c.name)
          : Number(e.value) === cores;
        if (!ok) problems.push(`${at}: ${e.name} must equal the CPU request (${cores}): a literal "${cores}" or resourceFieldRef requests.cpu`);
      }
      const limit = cpuCores(c.resources?.limits?.cpu);
      if (cores !== undefined && limit !== undefined && limit < cores) problems.push(`${at}: CPU limit below the request`);
    }
  }
  return problems;
}

/** Every Deployment and StatefulSet is covered by a PodDisruptionBudget, and every PDB covers a workload. */
export function disruptionBudgets(objects: K8sObject[]): string[] {
  const pdbs = objects.filter((o) => o.kind === "PodDisruptionBudget");
  const workloads = podTemplates(objects).filter((t) => WORKLOAD_KINDS.has(t.owner.kind));
  const covers = (pdb: K8sObject, t: PodTemplateOwner) =>
    pdb.metadata.namespace === t.owner.metadata.namespace &&
    selects((pdb.spec as { selector: LabelSelector }).selector, t.labels);
  const problems = workloads
    .filter((t) => !pdbs.some((p) => covers(p, t)))
    .map((t) => `${objectId(t.owner)}: no PodDisruptionBudget selects its pods`);
  for (const p of pdbs) {
    if (!workloads.some((t) => covers(p, t))) problems.push(`${objectId(p)}: selects no workload's pods`);
    const spec = p.spec as { minAvailable?: unknown; maxUnavailable?: unknown };
    if ((spec.minAvailable === undefined) === (spec.maxUnavailable === undefined)) {
      problems.push(`${objectId(p)}: set exactly one of minAvailable and maxUnavailable`);
    }
  }
  for (const t of workloads) {
    const replicas = (t.owner.spec as { replicas?: number }).replicas;
    const pdb = pdbs.find((p) => covers(p, t));
    const min = (pdb?.spec as { minAvailable?: number } | undefined)?.minAvailable;
    if (typeof min === "number" && (replicas === undefined || min >= replicas)) {
      problems.push(`${objectId(t.owner)}: its PodDisruptionBudget's minAvailable ${min} would block every node drain`);
    }
  }
  return problems;
}

/** ConfigMaps, Secrets and keys that pods refer to exist; Service selectors and target ports find pods. */
export function references(objects: K8sObject[]): string[] {
  const problems: string[] = [];
  const data = (kind: string, name: string, ns?: string) => {
    const o = objects.find((x) => x.kind === kind && x.metadata.name === name && x.metadata.namespace === ns);
    return o ? { ...((o.data as object) ?? {}), ...((o.stringData as object) ?? {}) } : undefined;
  };
  for (const t of podTemplates(objects)) {
    const ns = t.owner.metadata.namespace;
    for (const c of t.spec.containers) {
      for (const ef of c.envFrom ?? []) {
        if (ef.configMapRef && !data("ConfigMap", ef.configMapRef.name, ns)) problems.push(`${where(t, c)}: ConfigMap ${ef.configMapRef.name} missing`);
        if (ef.secretRef && !data("Secret", ef.secretRef.name, ns)) problems.push(`${where(t, c)}: Secret ${ef.secretRef.name} missing`);
      }
      for (const e of c.env ?? []) {
        const ref = e.valueFrom?.secretKeyRef ?? e.valueFrom?.configMapKeyRef;
        if (!ref) continue;
        const kind = e.valueFrom?.secretKeyRef ? "Secret" : "ConfigMap";
        const d = data(kind, ref.name, ns);
        if (!d || !(ref.key in d)) problems.push(`${where(t, c)}: env ${e.name} refers to ${kind} ${ref.name} key ${ref.key}, which is missing`);
      }
    }
    for (const v of t.spec.volumes ?? []) {
      if (v.configMap && !data("ConfigMap", v.configMap.name, ns)) problems.push(`${objectId(t.owner)}: volume ${v.name}: ConfigMap ${v.configMap.name} missing`);
      if (v.secret && !data("Secret", v.secret.secretName, ns)) problems.push(`${objectId(t.owner)}: volume ${v.name}: Secret ${v.secret.secretName} missing`);
    }
  }
  const templates = podTemplates(objects);
  for (const s of objects.filter((o) => o.kind === "Service")) {
    const spec = s.spec as { selector?: Record<string, string>; ports: { name?: string; targetPort?: string | number; port: number }[] };
    const pods = templates.filter((t) => t.owner.metadata.namespace === s.metadata.namespace && selects({ matchLabels: spec.selector }, t.labels));
    if (pods.length === 0) {
      problems.push(`${objectId(s)}: selects no pods`);
      continue;
    }
    for (const p of spec.ports) {
      const target = p.targetPort ?? p.port;
      const found = pods.some((t) =>
        t.spec.containers.some((c) => (c.ports ?? []).some((cp) => (typeof target === "number" ? cp.containerPort === target : cp.name === target))),
      );
      if (!found) problems.push(`${objectId(s)}: port ${p.name ?? p.port} targets ${target}, which no selected container exposes`);
    }
  }
  return problems;
}

/** Committed credentials are placeholders only: password and secret-key values start with CHANGE-ME-. */
export function placeholderSecrets(objects: K8sObject[]): string[] {
  const problems: string[] = [];
  for (const s of objects.filter((o) => o.kind === "Secret")) {
    if (s.data && Object.keys(s.data as object).length > 0) problems.push(`${objectId(s)}: use stringData with CHANGE-ME- placeholders, not data`);
    for (const [k, v] of Object.entries((s.stringData as Record<string, string>) ?? {})) {
      if (/PASSWORD|SECRET|TOKEN/i.test(k) && !String(v).startsWith("CHANGE-ME-")) {
        problems.push(`${objectId(s)}: ${k} must be a CHANGE-ME-... placeholder in the repository`);
      }
    }
  }
  return problems;
}

/**
 * The intended connectivity. In the namespace only these connections are open (by app.kubernetes.io/name); from other
 * namespaces only the gateway's gRPC port, the metrics ports to Prometheus (namespace monitoring) and NATS monitoring
 * to KEDA (namespace keda); every pod resolves DNS; nothing leaves for the internet.
 */
const ALLOWED_INSIDE: Record<string, string[]> = {
  gateway: ["nats:4222", "minio:9000"],
  "prior-worker": ["nats:4222", "minio:9000"],
  "decoder-worker": ["nats:4222", "minio:9000"],
  "upscale-worker": ["nats:4222", "minio:9000"],
  nats: ["nats:6222"],
  "minio-setup": ["minio:9000"],
};

export function networkRules(objects: K8sObject[]): string[] {
  const problems: string[] = [];
  if (!objects.some((o) => o.kind === "NetworkPolicy")) return ["no NetworkPolicy at all"];
  const np = new NetworkPolicies(objects);
  const pods = podEndpoints(objects);
  const ns = [...pods.values()][0]?.namespace ?? "";
  const outside = (namespace: string, podLabels: Record<string, string>): Endpoint => ({
    namespace,
    namespaceLabels: { "kubernetes.io/metadata.name": namespace },
    podLabels,
  });
  const internet: Endpoint = { namespace: "", namespaceLabels: {}, podLabels: {}, external: true };
  const prometheus = outside("monitoring", { "app.kubernetes.io/name": "prometheus" });
  const keda = outside("keda", { "app.kubernetes.io/name": "keda-operator", app: "keda-operator" });
  const stranger = outside("elsewhere", { app: "anything" });
  const dns = outside("kube-system", { "k8s-app": "kube-dns" });

  for (const [srcName, src] of pods) {
    for (const [dstName, dst] of pods) {
      for (const { port, protocol } of dst.ports) {
        const want = (ALLOWED_INSIDE[srcName] ?? []).includes(`${dstName}:${port}`);
        if (np.allows(src, dst, port, protocol) !== want) {
          problems.push(`network: ${srcName} -> ${dstName}:${port} is ${want ? "denied" : "allowed"}, should be ${want ? "allowed" : "denied"}`);
        }
      }
    }
    if (!np.allows(src, dns, 53, "UDP") || !np.allows(src, dns, 53, "TCP")) problems.push(`network: ${srcName} cannot reach the cluster DNS`);
    if (np.allows(src, internet, 443)) problems.push(`network: ${srcName} may connect to the internet`);
  }
  for (const [dstName, dst] of pods) {
    for (const { port, protocol } of dst.ports) {
      const isGrpc = dstName === "gateway" && port === 50051;
      const isMetrics = Object.entries(dst.namedPorts ?? {}).some(([n, p]) => n === "metrics" && p === port) || (dstName === "nats" && port === 8222);
      for (const [who, ep, want] of [
        ["a pod of another namespace", stranger, isGrpc],
        ["a client outside the cluster", internet, isGrpc],
        ["Prometheus", prometheus, isGrpc || isMetrics],
        ["KEDA", keda, isGrpc || (dstName === "nats" && port === 8222)],
      ] as const) {
        if (np.allows(ep, dst, port, protocol) !== want) {
          problems.push(`network: ${who} -> ${dstName}:${port} is ${want ? "denied" : "allowed"}, should be ${want ? "allowed" : "denied"}`);
        }
      }
    }
  }
  if (!pods.has("gateway")) problems.push(`network: no gateway pods in namespace ${ns}`);
  return problems;
}

/** ScaledObjects: targets, consumers and the lagThreshold = UNCLIP_MAX_BATCH rule (one batch per replica, keda.yaml). */
export function kedaRules(objects: K8sObject[]): string[] {
  const problems: string[] = [];
  const scaled = objects.filter((o) => o.kind === "ScaledObject");
  for (const pool of POOLS) {
    if (!scaled.some((s) => s.metadata.name === `${pool}-worker`)) problems.push(`keda: no ScaledObject for ${pool}-worker`);
  }
  for (const s of scaled) {
    const id = objectId(s);
    const spec = s.spec as any;
    const target = objects.find(
      (o) => o.kind === (spec.scaleTargetRef.kind ?? "Deployment") && o.metadata.name === spec.scaleTargetRef.name && o.metadata.namespace === s.metadata.namespace,
    );
    if (!target) {
      problems.push(`${id}: scaleTargetRef ${spec.scaleTargetRef.name} does not exist`);
      continue;
    }
    if ((target.spec as { replicas?: number }).replicas !== undefined) problems.push(`${objectId(target)}: has replicas although KEDA owns the count`);
    const pool = target.metadata.name.replace(/-worker$/, "");
    const c = (target.spec as any).template.spec.containers[0] as Container;
    const batch = Number(envValue(c, "UNCLIP_MAX_BATCH"));
    if (!Number.isInteger(batch)) problems.push(`${objectId(target)}: UNCLIP_MAX_BATCH must be set literally`);
    const triggers = (spec.triggers ?? []) as { type: string; name?: string; metadata: Record<string, string> }[];
    const expected: Record<string, string> = { interactive: `pool-${pool}`, batch: `pool-${pool}-batch` };
    for (const [name, consumer] of Object.entries(expected)) {
      const t = triggers.find((x) => x.name === name);
      if (!t) {
        problems.push(`${id}: no trigger named ${name}`);
        continue;
      }
      const m = t.metadata;
      if (t.type !== "nats-jetstream") problems.push(`${id}: trigger ${name} is ${t.type}, not nats-jetstream`);
      if (m.consumer !== consumer) problems.push(`${id}: trigger ${name} reads consumer ${m.consumer}, not ${consumer}`);
      if (m.stream !== "FARM_TASKS") problems.push(`${id}: trigger ${name} reads stream ${m.stream}, not FARM_TASKS`);
      if (m.account !== "$G") problems.push(`${id}: trigger ${name}: account must be $G (users without accounts live there)`);
      if (Number(m.lagThreshold) !== batch) {
        problems.push(`${id}: trigger ${name} lagThreshold ${m.lagThreshold} != UNCLIP_MAX_BATCH = ${batch}`);
      }
      const endpoint = new RegExp(`^nats\\.${s.metadata.namespace}\\.svc(\\.cluster\\.local)?:8222$`);
      if (!endpoint.test(m.natsServerMonitoringEndpoint ?? "")) {
        problems.push(`${id}: trigger ${name} natsServerMonitoringEndpoint ${m.natsServerMonitoringEndpoint} is not nats.${s.metadata.namespace}.svc:8222`);
      }
    }
    if (triggers.length !== 2) problems.push(`${id}: expected exactly the triggers interactive and batch`);
    const mod = spec.advanced?.scalingModifiers;
    if (!mod) problems.push(`${id}: no scalingModifiers (the lanes' lags must be summed)`);
    else {
      if (String(mod.formula).replace(/\s+/g, "") !== "interactive+batch") problems.push(`${id}: formula ${mod.formula} is not "interactive + batch"`);
      if (Number(mod.target) !== batch) problems.push(`${id}: scalingModifiers.target ${mod.target} != UNCLIP_MAX_BATCH = ${batch}`);
      if (mod.metricType !== "AverageValue") problems.push(`${id}: scalingModifiers.metricType must be AverageValue`);
    }
    if (spec.minReplicaCount > spec.maxReplicaCount) problems.push(`${id}: minReplicaCount above maxReplicaCount`);
  }
  const nats = find(objects, "Service", "nats");
  if (scaled.length > 0 && !(nats?.spec as any)?.ports?.some((p: { port: number }) => p.port === 8222)) {
    problems.push("keda: Service nats does not expose the monitoring port 8222");
  }
  return problems;
}

interface NatsUser {
  user: string;
  passwordVar?: string;
  publish: string[];
  common: string[];
}

/** Users of nats.conf (the fixed layout of deploy/k8s/nats.yaml): name, password variable, publish allow list. */
export function parseNatsUsers(conf: string): NatsUser[] {
  const users: NatsUser[] = [];
  const re = /\{ user: ([\w-]+), password: \$(\w+)(, permissions: \{([\s\S]*?)\n\s*\} \})?/g;
  for (const m of conf.matchAll(re)) {
    const body = m[4] ?? "";
    const publishBlock = /publish: \{ allow: \[([\s\S]*?)\] \}/.exec(body)?.[1] ?? "";
    const lines = publishBlock.split("\n").map((l) => l.trim());
    const subjects = (ls: string[]) => ls.flatMap((l) => [...l.matchAll(/"([^"]+)"/g)].map((x) => x[1]!));
    const commonStart = lines.indexOf("# common block");
    const commonEnd = lines.findIndex((l, i) => i > commonStart && l.startsWith("#"));
    users.push({
      user: m[1]!,
      passwordVar: m[2],
      publish: subjects(lines.filter((l) => !l.startsWith("#"))),
      common: commonStart < 0 ? [] : subjects(lines.slice(commonStart + 1, commonEnd)),
    });
  }
  return users;
}

/** NATS: the 3-node cluster, its users match the services' Secrets, and their permission lists stay consistent. */
export function natsRules(objects: K8sObject[]): string[] {
  const problems: string[] = [];
  const sts = find(objects, "StatefulSet", "nats");
  const cm = find(objects, "ConfigMap", "nats-config");
  const conf = (cm?.data as Record<string, string> | undefined)?.["nats.conf"];
  if (!sts || !conf) return ["nats: StatefulSet nats or ConfigMap nats-config (nats.conf) missing"];
  const spec = sts.spec as { replicas: number; serviceName: string; template: { spec: { containers: Container[] } } };
  if (spec.replicas < 3 || spec.replicas % 2 === 0) problems.push(`nats: ${spec.replicas} replicas; JetStream clustering needs an odd number >= 3`);
  const routes = [...conf.matchAll(/nats-route:\/\/([\w.-]+):6222/g)].map((m) => m[1]);
  const wantRoutes = Array.from({ length: spec.replicas }, (_, i) => `nats-${i}.${spec.serviceName}`);
  if (JSON.stringify(routes) !== JSON.stringify(wantRoutes)) problems.push(`nats: routes ${routes.join(", ")} should be ${wantRoutes.join(", ")}`);
  if (!/server_name: \$POD_NAME/.test(conf)) problems.push("nats: server_name must be the pod name (KEDA finds consumer leaders by it)");
  const replicasSetting = Number((find(objects, "ConfigMap", "unclip-config")?.data as Record<string, string>)?.UNCLIP_NATS_REPLICAS);
  if (!(replicasSetting >= 1 && replicasSetting <= spec.replicas)) problems.push(`nats: UNCLIP_NATS_REPLICAS ${replicasSetting} must be 1..${spec.replicas}`);
  if (replicasSetting !== 3) problems.push(`nats: UNCLIP_NATS_REPLICAS is ${replicasSetting}; the manifests run R3 streams and buckets`);

  const container = spec.template.spec.containers[0]!;
  const users = parseNatsUsers(conf);
  for (const u of users) {
    const env = container.env?.find((e) => e.name === u.passwordVar);
    if (!env?.valueFrom?.secretKeyRef) problems.push(`nats: user ${u.user}'s password $${u.passwordVar} is not an env var from a Secret`);
  }
  for (const service of FARM_SERVICES) {
    const secret = find(objects, "Secret", `${service}-credentials`);
    const user = (secret?.stringData as Record<string, string> | undefined)?.UNCLIP_NATS_USER;
    const natsUser = users.find((u) => u.user === user);
    if (!natsUser) {
      problems.push(`nats: ${service}-credentials names NATS user ${user}, which nats.conf does not define`);
      continue;
    }
    const ref = container.env?.find((e) => e.name === natsUser.passwordVar)?.valueFrom?.secretKeyRef;
    if (ref?.name !== `${service}-credentials` || ref.key !== "UNCLIP_NATS_PASSWORD") {
      problems.push(`nats: user ${user}'s password must come from ${service}-credentials/UNCLIP_NATS_PASSWORD`);
    }
    const deployment = find(objects, "Deployment", service);
    const c = (deployment?.spec as any)?.template.spec.containers[0] as Container | undefined;
    if (!c?.envFrom?.some((e) => e.secretRef?.name === `${service}-credentials`)) problems.push(`${service}: does not read ${service}-credentials`);
    if (c?.envFrom?.some((e) => e.secretRef && e.secretRef.name !== `${service}-credentials`)) problems.push(`${service}: reads another service's Secret`);
  }
  const farmUsers = users.filter((u) => (FARM_SERVICES as readonly string[]).includes(u.user));
  const common = farmUsers[0]?.common ?? [];
  if (common.length === 0) problems.push("nats: no common block in the farm users' publish lists");
  for (const u of farmUsers) {
    if (JSON.stringify(u.common) !== JSON.stringify(common)) problems.push(`nats: user ${u.user}'s common block differs from ${farmUsers[0]!.user}'s`);
    // The one purge allowed: the gateway's admissions in progress (KV_farm_admissions), removed by a subject purge once
    // queued so that the reconciler's scan meets no delete markers. No record or task lives there.
    if (
      u.publish.some((s) =>
        /^\$JS\.API\.(STREAM\.DELETE|STREAM\.PURGE\.(?!KV_farm_admissions$)|CONSUMER\.DELETE\.FARM_TASKS)|^\$JS\.API\.>$|^>$/.test(s),
      )
    ) {
      problems.push(`nats: user ${u.user} may delete or purge streams or the pool consumers`);
    }
  }
  const prior = users.find((u) => u.user === "prior-worker");
  for (const pool of POOLS) {
    const u = users.find((x) => x.user === `${pool}-worker`);
    const want = prior?.publish.map((s) => s.replace(/prior/g, pool));
    if (!u || JSON.stringify(u.publish) !== JSON.stringify(want)) problems.push(`nats: ${pool}-worker's permissions are not prior-worker's for pool ${pool}`);
  }
  return problems;
}

/** MinIO: no console, root credentials only for MinIO and the setup Job, a user per farm service. */
export function minioRules(objects: K8sObject[]): string[] {
  const problems: string[] = [];
  const sts = find(objects, "StatefulSet", "minio");
  const c = (sts?.spec as any)?.template.spec.containers[0] as Container | undefined;
  if (!c) return ["minio: StatefulSet minio missing"];
  if (envValue(c, "MINIO_BROWSER") !== "off") problems.push("minio: the console must be off (MINIO_BROWSER=off)");
  if ((c.ports ?? []).some((p) => p.containerPort !== 9000)) problems.push("minio: exposes a port besides the S3 API 9000");
  for (const s of objects.filter((o) => o.kind === "Service" && o.metadata.labels?.["app.kubernetes.io/name"] === "minio")) {
    if ((s.spec as any).ports.some((p: { port: number }) => p.port !== 9000)) problems.push(`${objectId(s)}: exposes a port besides 9000`);
  }
  for (const t of podTemplates(objects)) {
    const name = t.owner.metadata.name;
    if (name === "minio" || name === "minio-setup") continue;
    const reads = t.spec.containers.some((x) => x.env?.some((e) => e.valueFrom?.secretKeyRef?.name === "minio-root"));
    if (reads) problems.push(`${objectId(t.owner)}: reads MinIO's root credentials`);
  }
  const job = find(objects, "Job", "minio-setup");
  const jc = (job?.spec as any)?.template.spec.containers[0] as Container | undefined;
  if (!jc) problems.push("minio: Job minio-setup missing");
  for (const service of FARM_SERVICES) {
    const prefix = service.toUpperCase().replace(/-/g, "_");
    for (const key of ["ACCESS_KEY", "SECRET_KEY"]) {
      const ref = jc?.env?.find((e) => e.name === `${prefix}_S3_${key}`)?.valueFrom?.secretKeyRef;
      if (ref?.name !== `${service}-credentials` || ref.key !== `UNCLIP_S3_${key}`) {
        problems.push(`minio-setup: ${prefix}_S3_${key} must come from ${service}-credentials/UNCLIP_S3_${key}`);
      }
    }
  }
  const script = (find(objects, "ConfigMap", "minio-setup")?.data as Record<string, string> | undefined)?.["setup.sh"] ?? "";
  for (const service of FARM_SERVICES) {
    if (!script.includes(`"$${service.toUpperCase().replace(/-/g, "_")}_S3_ACCESS_KEY"`)) problems.push(`minio-setup: creates no user for ${service}`);
  }
  return problems;
}

/** Only UNCLIP_* names the code knows; the trained bundle for prior and decoder. */
export function farmConfig(objects: K8sObject[], expect: OverlayExpectation): string[] {
  const problems: string[] = [];
  const known = (n: string) => !n.startsWith("UNCLIP_") || KNOWN_VARIABLES.has(n) || OTHER_TOOLS_VARIABLES.has(n);
  for (const name of ["unclip-config", "unclip-accelerator"]) {
    const cm = find(objects, "ConfigMap", name);
    if (!cm) problems.push(`ConfigMap ${name} missing`);
    for (const k of Object.keys((cm?.data as object) ?? {})) if (!known(k)) problems.push(`ConfigMap ${name}: ${k} is not a variable the farm knows (it would refuse to start)`);
  }
  for (const service of FARM_SERVICES) {
    const secret = find(objects, "Secret", `${service}-credentials`);
    if (!secret) problems.push(`Secret ${service}-credentials missing`);
    for (const k of Object.keys((secret?.stringData as object) ?? {})) if (!known(k)) problems.push(`Secret ${service}-credentials: ${k} is unknown to the farm`);
    const d = find(objects, "Deployment", service);
    const c = (d?.spec as any)?.template.spec.containers[0] as Container | undefined;
    if (!c) {
      problems.push(`Deployment ${service} missing`);
      continue;
    }
    for (const e of c.env ?? []) if (!known(e.name)) problems.push(`Deployment ${service}: ${e.name} is not a variable the farm knows`);
  }
  for (const pool of ["prior", "decoder"]) {
    const c = (find(objects, "Deployment", `${pool}-worker`)?.spec as any)?.template.spec.containers[0] as Container | undefined;
    const bundle = c && envValue(c, "UNCLIP_BUNDLE");
    if (bundle !== "models/shapes-v1") problems.push(`${pool}-worker: UNCLIP_BUNDLE is ${bundle}, not the trained models/shapes-v1`);
    else if (!existsSync(path.join(expect.repoRoot, bundle, "manifest.json"))) problems.push(`${pool}-worker: ${bundle}/manifest.json is not in the repository`);
  }
  return problems;
}

/** GPU overlay: the workers get a GPU, GPU nodes and the CUDA image; elsewhere no GPU and no CUDA image anywhere. */
export function acceleratorRules(objects: K8sObject[], expect: OverlayExpectation): string[] {
  const problems: string[] = [];
  const provider = (find(objects, "ConfigMap", "unclip-accelerator")?.data as Record<string, string> | undefined)?.UNCLIP_EXECUTION_PROVIDER;
  if (provider !== (expect.gpu ? "cuda" : "cpu")) problems.push(`UNCLIP_EXECUTION_PROVIDER is ${provider}, expected ${expect.gpu ? "cuda" : "cpu"}`);
  for (const t of podTemplates(objects)) {
    const worker = t.labels["app.kubernetes.io/component"] === "model-worker";
    for (const c of t.spec.containers) {
      const at = where(t, c);
      const gpus = [c.resources?.requests?.["nvidia.com/gpu"], c.resources?.limits?.["nvidia.com/gpu"]];
      const cuda = /unclip-farm-cuda/.test(c.image ?? "");
      if (expect.gpu && worker) {
        if (gpus.some((g) => g === undefined || Number(g) < 1)) problems.push(`${at}: must request and limit nvidia.com/gpu`);
        if (!cuda) problems.push(`${at}: must run the CUDA image unclip-farm-cuda, not ${c.image}`);
        if (!t.spec.nodeSelector) problems.push(`${at}: no nodeSelector for GPU nodes`);
      } else {
        if (gpus.some((g) => g !== undefined)) problems.push(`${at}: requests a GPU`);
        if (cuda) problems.push(`${at}: runs the CUDA image`);
      }
    }
  }
  return problems;
}
