import path from "node:path";
import { fileURLToPath } from "node:url";
import { stringify } from "yaml";
import { renderKustomization, type K8sObject } from "./kustomize.js";
import { policyProblems } from "./policy.js";
import { schemaProblems } from "./schema-check.js";

/**
 * npm run deploy:check: renders every kustomization under deploy/ (the base and each overlay), validates every object
 * against the Kubernetes and KEDA schemas (unknown fields included) and checks the farm's deployment policy. Exits 1
 * with one line per problem. `--print <dir>` (relative to the repository root) writes one rendering as YAML instead, like `kubectl kustomize <dir>`.
 */
export const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../../..");

/** What is checked: each directory and whether it is the GPU deployment. */
export const TARGETS = [
  { dir: "deploy/k8s", gpu: false },
  { dir: "deploy/overlays/cpu", gpu: false },
  { dir: "deploy/overlays/gpu", gpu: true },
] as const;

export interface TargetResult {
  dir: string;
  objects: K8sObject[];
  problems: string[];
}

export function checkTarget(target: { dir: string; gpu: boolean }): TargetResult {
  let objects: K8sObject[];
  try {
    objects = renderKustomization(path.join(repoRoot, target.dir));
  } catch (err) {
    return { dir: target.dir, objects: [], problems: [`render: ${(err as Error).message}`] };
  }
  const problems = [...objects.flatMap(schemaProblems), ...policyProblems(objects, { gpu: target.gpu, repoRoot })];
  return { dir: target.dir, objects, problems };
}

function main(argv: string[]): number {
  const print = argv.indexOf("--print");
  if (print >= 0) {
    const dir = argv[print + 1];
    if (!dir) throw new Error("--print needs a kustomization directory");
    const objects = renderKustomization(path.resolve(repoRoot, dir));
    process.stdout.write(objects.map((o) => stringify(o, { lineWidth: 0 })).join("---\n"));
    return 0;
  }
  let failed = 0;
  for (const target of TARGETS) {
    const r = checkTarget(target);
    const kinds = new Map<string, number>();
    for (const o of r.objects) kinds.set(o.kind, (kinds.get(o.kind) ?? 0) + 1);
    const summary = [...kinds].map(([k, n]) => `${n} ${k}`).join(", ");
    if (r.problems.length === 0) {
      console.log(`ok   ${r.dir}: ${r.objects.length} objects valid (${summary})`);
    } else {
      failed++;
      console.log(`FAIL ${r.dir}: ${r.problems.length} problem(s)`);
      for (const p of r.problems) console.log(`  - ${p}`);
    }
  }
  console.log(
    failed === 0
      ? "deploy check passed: schemas (kubernetes-models, @kubernetes-models/keda), probes, resources, threads, PDBs, network policies, KEDA, NATS and MinIO rules"
      : `deploy check failed for ${failed} of ${TARGETS.length} kustomizations`,
  );
  return failed === 0 ? 0 : 1;
}

if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  process.exitCode = main(process.argv.slice(2));
}
