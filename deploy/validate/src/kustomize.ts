import { existsSync, readFileSync, statSync } from "node:fs";
import path from "node:path";
import { parseAllDocuments } from "yaml";
import { applyJsonPatch, type JsonPatchOp } from "./json-patch.js";
import { strategicMerge } from "./strategic-merge.js";

/**
 * Renders a kustomization offline, as `kubectl kustomize` (kustomize v5) would, for the subset of kustomize this
 * repository uses: `resources` (files and directories), `patches` (JSON 6902 or strategic merge, with or without a
 * `target`), `namespace`, `labels` and `images`, applied in kustomize's order (patches, namespace, labels, images).
 * Debian's kubectl 1.20 bundles kustomize 2.0, which knows neither `labels` nor `patches` with a target.
 *
 * Anything outside that subset is an error rather than silently ignored, and so is a patch that matches nothing: a
 * check that renders something else than what the cluster will get would prove nothing.
 */
export type K8sObject = {
  apiVersion: string;
  kind: string;
  metadata: { name: string; namespace?: string; labels?: Record<string, string>; [k: string]: unknown };
  [k: string]: unknown;
};

export class KustomizeError extends Error {
  override name = "KustomizeError";
}

const KUSTOMIZATION_FILES = ["kustomization.yaml", "kustomization.yml", "Kustomization"];
const SUPPORTED_KEYS = new Set(["apiVersion", "kind", "resources", "namespace", "labels", "images", "patches"]);

/** Kinds that are not namespaced (the namespace transformer leaves them alone). */
const CLUSTER_SCOPED = new Set([
  "Namespace",
  "ClusterRole",
  "ClusterRoleBinding",
  "CustomResourceDefinition",
  "PersistentVolume",
  "StorageClass",
  "PriorityClass",
  "IngressClass",
  "RuntimeClass",
  "ValidatingWebhookConfiguration",
  "MutatingWebhookConfiguration",
  "ClusterTriggerAuthentication",
]);

interface Target {
  group?: string;
  version?: string;
  kind?: string;
  name?: string;
  namespace?: string;
  labelSelector?: string;
}

interface Patch {
  path?: string;
  patch?: string;
  target?: Target;
}

interface ImageEntry {
  name: string;
  newName?: string;
  newTag?: string;
  digest?: string;
}

interface LabelEntry {
  pairs: Record<string, string>;
  includeSelectors?: boolean;
  includeTemplates?: boolean;
}

export function renderKustomization(dir: string): K8sObject[] {
  const file = KUSTOMIZATION_FILES.map((f) => path.join(dir, f)).find((f) => existsSync(f));
  if (!file) throw new KustomizeError(`${dir}: no kustomization.yaml`);
  const k = parseYamlDocs(file)[0] as Record<string, unknown> | undefined;
  if (!k || typeof k !== "object") throw new KustomizeError(`${file}: empty`);
  const unknown = Object.keys(k).filter((key) => !SUPPORTED_KEYS.has(key));
  if (unknown.length > 0) {
    throw new KustomizeError(`${file}: ${unknown.join(", ")} not implemented by deploy/validate's renderer (src/kustomize.ts)`);
  }

  let objects: K8sObject[] = [];
  for (const entry of (k.resources as string[] | undefined) ?? []) {
    const p = path.resolve(dir, entry);
    if (!existsSync(p)) throw new KustomizeError(`${file}: resource ${entry} does not exist`);
    objects.push(...(statSync(p).isDirectory() ? renderKustomization(p) : readObjects(p)));
  }
  assertUnique(objects, file);

  for (const [i, patch] of ((k.patches as Patch[] | undefined) ?? []).entries()) {
    objects = applyPatch(objects, patch, dir, `${file}: patches[${i}]`);
  }
  if (typeof k.namespace === "string") {
    for (const o of objects) if (!CLUSTER_SCOPED.has(o.kind)) o.metadata.namespace = k.namespace;
  }
  for (const entry of (k.labels as LabelEntry[] | undefined) ?? []) applyLabels(objects, entry, file);
  for (const image of (k.images as ImageEntry[] | undefined) ?? []) applyImage(objects, image);
  assertUnique(objects, file);
  return objects;
}

function parseYamlDocs(file: string): unknown[] {
  const docs = parseAllDocuments(readFileSync(file, "utf8"));
  return docs.map((d) => {
    if (d.errors.length > 0) throw new KustomizeError(`${file}: ${d.errors[0]!.message}`);
    return d.toJS();
  });
}

function readObjects(file: string): K8sObject[] {
  return parseYamlDocs(file)
    .filter((d) => d !== null && d !== undefined)
    .map((d) => {
      const o = d as K8sObject;
      if (typeof o !== "object" || !o.apiVersion || !o.kind || !o.metadata?.name) {
        throw new KustomizeError(`${file}: every document needs apiVersion, kind and metadata.name`);
      }
      return o;
    });
}

export function objectId(o: K8sObject): string {
  return `${o.kind}/${o.metadata.namespace ? `${o.metadata.namespace}/` : ""}${o.metadata.name}`;
}

function assertUnique(objects: K8sObject[], where: string): void {
  const seen = new Set<string>();
  for (const o of objects) {
    const id = `${o.apiVersion.split("/")[0]}|${objectId(o)}`;
    if (seen.has(id)) throw new KustomizeError(`${where}: ${objectId(o)} is defined twice`);
    seen.add(id);
  }
}

function applyPatch(objects: K8sObject[], patch: Patch, dir: string, where: string): K8sObject[] {
  const text = patch.patch ?? (patch.path ? readFileSync(path.resolve(dir, patch.path), "utf8") : undefined);
  if (text === undefined) throw new KustomizeError(`${where}: needs patch or path`);
  const body = parseAllDocuments(text)[0]?.toJS() as unknown;
  let matches: (o: K8sObject) => boolean;
  if (patch.target) {
    matches = targetMatcher(patch.target, where);
  } else if (Array.isArray(body)) {
    throw new KustomizeError(`${where}: a JSON 6902 patch needs a target`);
  } else {
    const p = body as K8sObject;
    matches = (o) => o.kind === p.kind && o.metadata.name === p.metadata?.name;
  }
  let hits = 0;
  const out = objects.map((o) => {
    if (!matches(o)) return o;
    hits++;
    if (Array.isArray(body)) return applyJsonPatch(o, body as JsonPatchOp[], `${where} on ${objectId(o)}`) as K8sObject;
    // A strategic merge patch with a target applies to each match whatever name it carries (as in kustomize).
    const { metadata, ...rest } = body as K8sObject;
    const meta = { ...(metadata ?? {}) } as Record<string, unknown>;
    delete meta.name;
    delete meta.namespace;
    return strategicMerge(o, { ...rest, ...(Object.keys(meta).length > 0 ? { metadata: meta } : {}) }) as K8sObject;
  });
  if (hits === 0) throw new KustomizeError(`${where}: matches no object`);
  return out;
}

function targetMatcher(t: Target, where: string): (o: K8sObject) => boolean {
  const allowed = new Set(["group", "version", "kind", "name", "namespace", "labelSelector"]);
  const extra = Object.keys(t).filter((key) => !allowed.has(key));
  if (extra.length > 0) throw new KustomizeError(`${where}: target ${extra.join(", ")} not implemented`);
  const full = (pattern: string) => new RegExp(`^(?:${pattern})$`);
  const name = t.name === undefined ? undefined : full(t.name);
  const labels = t.labelSelector === undefined ? undefined : parseLabelSelector(t.labelSelector, where);
  return (o) => {
    const [group, version] = o.apiVersion.includes("/") ? o.apiVersion.split("/") : ["", o.apiVersion];
    if (t.group !== undefined && t.group !== group) return false;
    if (t.version !== undefined && t.version !== version) return false;
    if (t.kind !== undefined && !full(t.kind).test(o.kind)) return false;
    if (name && !name.test(o.metadata.name)) return false;
    if (t.namespace !== undefined && t.namespace !== (o.metadata.namespace ?? "")) return false;
    return !labels || labels(o.metadata.labels ?? {});
  };
}

/** Equality-based selectors: `a=b`, `a==b`, `a!=b`, `a`, `!a`, comma-separated. */
function parseLabelSelector(selector: string, where: string): (labels: Record<string, string>) => boolean {
  const tests = selector.split(",").map((raw) => {
    const term = raw.trim();
    let m: RegExpExecArray | null;
    if ((m = /^([\w./-]+)\s*!=\s*([\w.-]*)$/.exec(term))) return (l: Record<string, string>) => l[m![1]!] !== m![2];
    if ((m = /^([\w./-]+)\s*==?\s*([\w.-]*)$/.exec(term))) return (l: Record<string, string>) => l[m![1]!] === m![2];
    if ((m = /^!([\w./-]+)$/.exec(term))) return (l: Record<string, string>) => !(m![1]! in l);
    if ((m = /^([\w./-]+)$/.exec(term))) return (l: Record<string, string>) => m![1]! in l;
    throw new KustomizeError(`${where}: label selector term ${JSON.stringify(term)} not implemented`);
  });
  return (labels) => tests.every((t) => t(labels));
}

/** Pod templates whose labels `includeTemplates` reaches (kustomize's label field specs for templates). */
function templates(o: K8sObject): Record<string, unknown>[] {
  const spec = o.spec as Record<string, any> | undefined;
  if (!spec) return [];
  if (o.kind === "CronJob") return [spec.jobTemplate, spec.jobTemplate?.spec?.template].filter(Boolean);
  return spec.template ? [spec.template] : [];
}

function applyLabels(objects: K8sObject[], entry: LabelEntry, where: string): void {
  if (entry.includeSelectors) throw new KustomizeError(`${where}: labels with includeSelectors: true not implemented`);
  for (const o of objects) {
    o.metadata.labels = { ...(o.metadata.labels ?? {}), ...entry.pairs };
    if (!entry.includeTemplates) continue;
    for (const t of templates(o)) {
      const meta = ((t.metadata as Record<string, unknown> | undefined) ??= {});
      meta.labels = { ...((meta.labels as Record<string, string> | undefined) ?? {}), ...entry.pairs };
    }
  }
}

/** Splits an image reference into name, tag and digest (a tag follows the last path segment's colon). */
export function parseImage(ref: string): { name: string; tag?: string; digest?: string } {
  const [rest, digest] = ref.split("@") as [string, string | undefined];
  const slash = rest.lastIndexOf("/");
  const colon = rest.lastIndexOf(":");
  if (colon > slash) return { name: rest.slice(0, colon), tag: rest.slice(colon + 1), digest };
  return { name: rest, digest };
}

function applyImage(objects: K8sObject[], image: ImageEntry): void {
  const visit = (node: unknown): void => {
    if (Array.isArray(node)) return node.forEach(visit);
    if (!node || typeof node !== "object") return;
    for (const [key, value] of Object.entries(node as Record<string, unknown>)) {
      if ((key === "containers" || key === "initContainers" || key === "ephemeralContainers") && Array.isArray(value)) {
        for (const c of value as { image?: string }[]) {
          if (!c.image) continue;
          const ref = parseImage(c.image);
          if (ref.name !== image.name) continue;
          const name = image.newName ?? ref.name;
          if (image.digest) c.image = `${name}@${image.digest}`;
          else {
            const tag = image.newTag ?? ref.tag;
            c.image = `${name}${tag ? `:${tag}` : ""}${!image.newTag && ref.digest ? `@${ref.digest}` : ""}`;
          }
        }
      } else visit(value);
    }
  };
  objects.forEach(visit);
}
