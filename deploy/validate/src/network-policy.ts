import type { K8sObject } from "./kustomize.js";
import { podTemplates, selects, type LabelSelector } from "./k8s-objects.js";

/**
 * Evaluates the rendered NetworkPolicies the way the Kubernetes API defines them (a pod selected by no policy of a
 * direction is open in that direction; otherwise a connection needs a rule of some selecting policy; a connection
 * needs both the source's egress and the destination's ingress), so that the check can state the intended
 * connectivity as a table and compare.
 */
export interface Endpoint {
  /** Its namespace's labels (kubernetes.io/metadata.name is set on every namespace). */
  namespaceLabels: Record<string, string>;
  namespace: string;
  podLabels: Record<string, string>;
  /** Container ports by name, for named ports in rules. */
  namedPorts?: Record<string, number>;
  /** Outside the cluster (matched by ipBlock peers only). */
  external?: boolean;
}

interface Peer {
  podSelector?: LabelSelector;
  namespaceSelector?: LabelSelector;
  ipBlock?: { cidr: string; except?: string[] };
}

interface Rule {
  from?: Peer[];
  to?: Peer[];
  ports?: { port?: number | string; protocol?: string; endPort?: number }[];
}

interface Policy {
  namespace: string;
  podSelector: LabelSelector;
  policyTypes: string[];
  ingress: Rule[];
  egress: Rule[];
}

export class NetworkPolicies {
  private readonly policies: Policy[];

  constructor(objects: K8sObject[]) {
    this.policies = objects
      .filter((o) => o.kind === "NetworkPolicy")
      .map((o) => {
        const spec = o.spec as {
          podSelector: LabelSelector;
          policyTypes?: string[];
          ingress?: Rule[];
          egress?: Rule[];
        };
        const types = spec.policyTypes ?? ["Ingress", ...(spec.egress ? ["Egress"] : [])];
        return {
          namespace: o.metadata.namespace ?? "",
          podSelector: spec.podSelector,
          policyTypes: types,
          ingress: spec.ingress ?? [],
          egress: spec.egress ?? [],
        };
      });
  }

  /** Whether `src` may open a connection to `dst` on port/protocol (both directions' policies considered). */
  allows(src: Endpoint, dst: Endpoint, port: number, protocol = "TCP"): boolean {
    const egressOk = src.external || this.direction("Egress", src, dst, port, protocol);
    const ingressOk = dst.external || this.direction("Ingress", dst, src, port, protocol);
    return egressOk && ingressOk;
  }

  private direction(type: "Ingress" | "Egress", self: Endpoint, peer: Endpoint, port: number, protocol: string): boolean {
    const selecting = this.policies.filter(
      (p) => p.namespace === self.namespace && p.policyTypes.includes(type) && selects(p.podSelector, self.podLabels),
    );
    if (selecting.length === 0) return true;
    const portOwner = type === "Ingress" ? self : peer;
    return selecting.some((p) =>
      (type === "Ingress" ? p.ingress : p.egress).some((rule) => {
        const peers = type === "Ingress" ? rule.from : rule.to;
        const peerOk = !peers || peers.length === 0 || peers.some((x) => peerMatches(x, p.namespace, peer));
        const portOk =
          !rule.ports ||
          rule.ports.length === 0 ||
          rule.ports.some((rp) => {
            if ((rp.protocol ?? "TCP") !== protocol) return false;
            if (rp.port === undefined) return true;
            const n = typeof rp.port === "number" ? rp.port : portOwner.namedPorts?.[rp.port];
            return n !== undefined && port >= n && port <= (rp.endPort ?? n);
          });
        return peerOk && portOk;
      }),
    );
  }
}

function peerMatches(peer: Peer, policyNamespace: string, ep: Endpoint): boolean {
  if (peer.ipBlock) return ep.external === true;
  if (ep.external) return false;
  if (peer.namespaceSelector) {
    return selects(peer.namespaceSelector, ep.namespaceLabels) && selects(peer.podSelector, ep.podLabels);
  }
  return ep.namespace === policyNamespace && selects(peer.podSelector, ep.podLabels);
}

/** The pods the rendered workloads create, as endpoints, keyed by app.kubernetes.io/name. */
export function podEndpoints(objects: K8sObject[]): Map<string, Endpoint & { ports: { port: number; protocol: string }[] }> {
  const out = new Map<string, Endpoint & { ports: { port: number; protocol: string }[] }>();
  for (const t of podTemplates(objects)) {
    const namespace = t.owner.metadata.namespace ?? "";
    const ports = t.spec.containers.flatMap((c) => c.ports ?? []);
    out.set(t.labels["app.kubernetes.io/name"] ?? t.owner.metadata.name, {
      namespace,
      namespaceLabels: { "kubernetes.io/metadata.name": namespace },
      podLabels: t.labels,
      namedPorts: Object.fromEntries(ports.filter((p) => p.name).map((p) => [p.name!, p.containerPort])),
      ports: ports.map((p) => ({ port: p.containerPort, protocol: p.protocol ?? "TCP" })),
    });
  }
  return out;
}
