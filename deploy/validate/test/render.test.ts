import { mkdtempSync, writeFileSync, mkdirSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { describe, expect, it } from "vitest";
import { applyJsonPatch } from "../src/json-patch.js";
import { parseImage, renderKustomization } from "../src/kustomize.js";
import { strategicMerge } from "../src/strategic-merge.js";

function tree(files: Record<string, string>): string {
  const dir = mkdtempSync(path.join(tmpdir(), "kust-"));
  for (const [name, text] of Object.entries(files)) {
    mkdirSync(path.dirname(path.join(dir, name)), { recursive: true });
    writeFileSync(path.join(dir, name), text);
  }
  return dir;
}

const deployment = `apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
  labels: { tier: front }
spec:
  selector: { matchLabels: { app: web } }
  template:
    metadata: { labels: { app: web } }
    spec:
      containers:
        - name: web
          image: app:1
          env: [{ name: A, value: "1" }]
`;

describe("renderKustomization", () => {
  it("applies resources, patches (both kinds, by label selector and regex name), namespace, labels and images in kustomize's order", () => {
    const dir = tree({
      "base/kustomization.yaml": "resources: [d.yaml]\nimages: [{ name: app, newName: reg/app, newTag: '2' }]\n",
      "base/d.yaml": deployment,
      "over/kustomization.yaml": `resources: [../base]
namespace: ns
labels: [{ pairs: { team: x }, includeTemplates: true }]
images: [{ name: app-gpu, newName: reg/app-gpu, newTag: '3' }]
patches:
  - target: { kind: Deployment, labelSelector: tier=front }
    patch: |-
      - op: replace
        path: /spec/template/spec/containers/0/image
        value: app-gpu
  - target: { kind: Deployment, name: "w.b" }
    patch: |-
      apiVersion: apps/v1
      kind: Deployment
      metadata: { name: ignored }
      spec:
        template:
          spec:
            containers:
              - name: web
                env: [{ name: B, value: "2" }]
`,
    });
    const [d] = renderKustomization(path.join(dir, "over")) as any[];
    expect(d.metadata.namespace).toBe("ns");
    expect(d.metadata.labels).toEqual({ tier: "front", team: "x" });
    expect(d.spec.template.metadata.labels).toEqual({ app: "web", team: "x" });
    expect(d.spec.selector.matchLabels).toEqual({ app: "web" });
    const c = d.spec.template.spec.containers[0];
    expect(c.image).toBe("reg/app-gpu:3");
    expect(c.env).toEqual([{ name: "A", value: "1" }, { name: "B", value: "2" }]);
  });

  it("refuses what it does not implement and patches that match nothing", () => {
    const gen = tree({ "kustomization.yaml": "resources: [d.yaml]\nconfigMapGenerator: []\n", "d.yaml": deployment });
    expect(() => renderKustomization(gen)).toThrow(/configMapGenerator not implemented/);
    const miss = tree({
      "kustomization.yaml": "resources: [d.yaml]\npatches:\n  - target: { kind: Service }\n    patch: '[]'\n",
      "d.yaml": deployment,
    });
    expect(() => renderKustomization(miss)).toThrow(/matches no object/);
    const dup = tree({ "kustomization.yaml": "resources: [d.yaml, d.yaml]\n", "d.yaml": deployment });
    expect(() => renderKustomization(dup)).toThrow(/defined twice/);
  });
});

describe("patches", () => {
  it("JSON 6902: add, remove, replace, escaped keys, append, test", () => {
    const doc = { a: { "x/y": 1 }, l: [1, 2] };
    const out = applyJsonPatch(
      doc,
      [
        { op: "add", path: "/a/b", value: 2 },
        { op: "replace", path: "/a/x~1y", value: 3 },
        { op: "add", path: "/l/-", value: 4 },
        { op: "remove", path: "/l/0" },
        { op: "test", path: "/l", value: [2, 4] },
      ],
      "t",
    );
    expect(out).toEqual({ a: { "x/y": 3, b: 2 }, l: [2, 4] });
    expect(doc).toEqual({ a: { "x/y": 1 }, l: [1, 2] });
    expect(() => applyJsonPatch(doc, [{ op: "replace", path: "/nope", value: 1 }], "t")).toThrow(/does not exist/);
  });

  it("strategic merge: keyed lists merge, other lists are replaced, null and $patch: delete remove", () => {
    const target = { containers: [{ name: "a", ports: [{ containerPort: 1 }] }, { name: "b" }], tolerations: [{ key: "x" }], k: 1 };
    const patch = { containers: [{ name: "a", image: "i" }, { name: "b", $patch: "delete" }], tolerations: [{ key: "y" }], k: null };
    expect(strategicMerge(target, patch)).toEqual({ containers: [{ name: "a", ports: [{ containerPort: 1 }], image: "i" }], tolerations: [{ key: "y" }] });
  });

  it("parses image references", () => {
    expect(parseImage("reg:5000/a/b:1.2@sha256:ab")).toEqual({ name: "reg:5000/a/b", tag: "1.2", digest: "sha256:ab" });
    expect(parseImage("reg:5000/a/b")).toEqual({ name: "reg:5000/a/b", digest: undefined });
  });
});
