/**
 * The part of Kubernetes' strategic merge patch the overlays use: maps merge recursively, `null` deletes a key, lists
 * of the well-known keyed kinds (containers by name, env by name, ports by containerPort, volumeMounts by mountPath,
 * volumes by name) merge element by element, an element with `$patch: delete` is removed; every other list is
 * replaced whole (as for tolerations, args, command, which have no merge key in the Kubernetes API).
 */
const MERGE_KEYS: Record<string, string> = {
  containers: "name",
  initContainers: "name",
  ephemeralContainers: "name",
  env: "name",
  volumes: "name",
  volumeMounts: "mountPath",
  ports: "containerPort",
  imagePullSecrets: "name",
  topologySpreadConstraints: "topologyKey",
};

type Obj = Record<string, unknown>;

const isObj = (v: unknown): v is Obj => typeof v === "object" && v !== null && !Array.isArray(v);

export function strategicMerge(target: unknown, patch: unknown): unknown {
  if (!isObj(patch) || !isObj(target)) return structuredClone(patch);
  const out: Obj = structuredClone(target);
  for (const [key, value] of Object.entries(patch)) {
    if (key === "$patch") continue;
    if (value === null) {
      delete out[key];
    } else if (Array.isArray(value) && MERGE_KEYS[key] && Array.isArray(out[key])) {
      out[key] = mergeList(out[key] as Obj[], value as Obj[], MERGE_KEYS[key]!);
    } else if (isObj(value) && value.$patch === "replace") {
      const { $patch: _, ...rest } = value;
      out[key] = structuredClone(rest);
    } else {
      out[key] = strategicMerge(out[key], value);
    }
  }
  return out;
}

function mergeList(target: Obj[], patch: Obj[], mergeKey: string): Obj[] {
  const out = structuredClone(target);
  for (const item of patch) {
    const i = out.findIndex((t) => t[mergeKey] === item[mergeKey]);
    if (item.$patch === "delete") {
      if (i >= 0) out.splice(i, 1);
    } else if (i >= 0) {
      out[i] = strategicMerge(out[i], item) as Obj;
    } else {
      out.push(structuredClone(item));
    }
  }
  return out;
}
