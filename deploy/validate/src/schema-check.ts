import { ScaledObject, TriggerAuthentication } from "@kubernetes-models/keda/keda.sh/v1alpha1";
import { Deployment, StatefulSet } from "kubernetes-models/apps/v1";
import { Job } from "kubernetes-models/batch/v1";
import { NetworkPolicy } from "kubernetes-models/networking.k8s.io/v1";
import { PodDisruptionBudget } from "kubernetes-models/policy/v1";
import { ConfigMap, Namespace, Secret, Service } from "kubernetes-models/v1";
import { objectId, type K8sObject } from "./kustomize.js";

/**
 * Validates rendered objects against the Kubernetes and KEDA schemas of the `kubernetes-models` and
 * `@kubernetes-models/keda` packages, choosing the model class by apiVersion and kind. A kind missing from MODELS fails
 * the check: add its model here when the manifests start using it.
 */
type ModelClass = new (data: any) => { validate(): void };

export const MODELS: Record<string, ModelClass> = {
  "v1/Namespace": Namespace,
  "v1/ConfigMap": ConfigMap,
  "v1/Secret": Secret,
  "v1/Service": Service,
  "apps/v1/Deployment": Deployment,
  "apps/v1/StatefulSet": StatefulSet,
  "batch/v1/Job": Job,
  "policy/v1/PodDisruptionBudget": PodDisruptionBudget,
  "networking.k8s.io/v1/NetworkPolicy": NetworkPolicy,
  "keda.sh/v1alpha1/ScaledObject": ScaledObject,
  "keda.sh/v1alpha1/TriggerAuthentication": TriggerAuthentication,
};

/** Fields of every object that the schemas' metadata/type checks do not reach. */
const TOP_LEVEL = new Set(["apiVersion", "kind", "metadata", "spec", "data", "stringData", "binaryData", "type", "immutable"]);

/** Problems of one object: schema errors, then fields the schema does not know (which `kubectl apply` refuses). */
export function schemaProblems(obj: K8sObject): string[] {
  const id = objectId(obj);
  const Class = MODELS[`${obj.apiVersion}/${obj.kind}`];
  if (!Class) return [`${id}: no schema for apiVersion ${obj.apiVersion}, kind ${obj.kind} (add it to MODELS in schema-check.ts)`];
  const problems: string[] = [];
  try {
    new Class(obj).validate();
  } catch (err) {
    problems.push(`${id}: ${(err as Error).message}`);
  }
  problems.push(...unknownFields(obj, Class).map((p) => `${id}: unknown field ${p} (kubectl apply's strict field validation refuses it)`));
  return problems;
}

/**
 * The models' validators are compiled JSON schemas that allow unknown properties, so a misspelt field (`imagee`,
 * `readynessProbe`) would pass them although the API server rejects it. The validator reads every property its schema
 * knows and enumerates the keys of maps (labels, resource lists), so running it over proxies that record each read
 * finds the keys it never looked at: the unknown fields.
 */
function unknownFields(obj: K8sObject, Class: ModelClass): string[] {
  const unread: string[] = [];
  const proxies: { path: string; target: Record<string, unknown>; read: Set<string> }[] = [];
  const wrap = (value: unknown, path: string): unknown => {
    if (value === null || typeof value !== "object") return value;
    if (Array.isArray(value)) return value.map((v, i) => wrap(v, `${path}[${i}]`));
    const target = value as Record<string, unknown>;
    const read = new Set<string>();
    const wrapped: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(target)) wrapped[k] = wrap(v, path ? `${path}.${k}` : k);
    proxies.push({ path, target, read });
    return new Proxy(wrapped, {
      get(t, key, receiver) {
        if (typeof key === "string") read.add(key);
        return Reflect.get(t, key, receiver);
      },
      ownKeys(t) {
        for (const k of Reflect.ownKeys(t)) if (typeof k === "string") read.add(k);
        return Reflect.ownKeys(t);
      },
    });
  };
  const root = wrap(obj, "") as Record<string, unknown>;
  try {
    Class.prototype.validate.call(root);
  } catch {
    // Reported by schemaProblems already.
  }
  for (const { path, target, read } of proxies) {
    for (const key of Object.keys(target)) {
      if (path === "" ? !TOP_LEVEL.has(key) : !read.has(key)) unread.push(path ? `${path}.${key}` : key);
    }
  }
  return unread;
}
