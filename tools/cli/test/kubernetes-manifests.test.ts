// The Kubernetes manifests, rendered by kustomize (kubectl kustomize) the way
// a cluster would receive them, held to the rules of deploy/k8s: probes,
// resources and a locked-down security context on every container, one
// writer per SQLite service, read replicas of user-orders, event streams
// kept on every NATS server, and network
// policies that allow exactly the edges of deploy/k8s/call-graph.yaml.
import { spawnSync } from "node:child_process";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";
import { parse, parseAllDocuments } from "yaml";
import { defaultServiceNodeFlags } from "../src/mesh/local-mesh.js";

const k8s = fileURLToPath(new URL("../../../deploy/k8s", import.meta.url));
const sqliteServices = ["users", "products", "orders"];
const nameLabel = "app.kubernetes.io/name";

interface Container {
  name: string;
  ports?: { name?: string; containerPort: number }[];
  readinessProbe?: Record<string, unknown>;
  livenessProbe?: Record<string, unknown>;
  resources?: { requests?: Record<string, string>; limits?: Record<string, string> };
  securityContext?: {
    allowPrivilegeEscalation?: boolean;
    readOnlyRootFilesystem?: boolean;
    runAsNonRoot?: boolean;
    capabilities?: { drop?: string[] };
    seccompProfile?: { type?: string };
  };
}
interface PodSpec {
  containers: Container[];
  securityContext?: { runAsNonRoot?: boolean; seccompProfile?: { type?: string } };
}
interface Peer {
  podSelector?: { matchLabels?: Record<string, string> };
  namespaceSelector?: { matchLabels?: Record<string, string> };
}
interface Rule {
  from?: Peer[];
  to?: Peer[];
  ports?: { port: string | number; protocol?: string }[];
}
interface K8sObject {
  kind: string;
  metadata: { name: string; labels?: Record<string, string> };
  spec: {
    replicas?: number;
    template?: { metadata: { labels: Record<string, string> }; spec: PodSpec };
    volumeClaimTemplates?: unknown[];
    podSelector?: { matchLabels?: Record<string, string> };
    policyTypes?: string[];
    ingress?: Rule[];
    egress?: Rule[];
  };
}
interface Edge {
  from: string;
  to: string;
  port: string;
}

/** The objects kustomize renders for a directory of deploy/k8s. */
function render(directory: string): K8sObject[] {
  const result = spawnSync("kubectl", ["kustomize", join(k8s, directory)], { encoding: "utf8", timeout: 60_000 });
  if (result.status !== 0) throw new Error(`kubectl kustomize ${directory} failed: ${result.stderr}`);
  return parseAllDocuments(result.stdout).map((document) => document.toJS() as K8sObject);
}

const callGraph = (parse(readFileSync(join(k8s, "call-graph.yaml"), "utf8")) as { edges: Edge[] }).edges;
const edgeKey = (edge: Edge) => `${edge.from} -> ${edge.to}:${edge.port}`;

/** Every problem the rendered objects have, as sentences; empty when they keep the rules. */
function problems(objects: K8sObject[]): string[] {
  const found: string[] = [];
  const workloads = objects.filter((o) => o.kind === "StatefulSet" || o.kind === "Deployment");
  for (const workload of workloads) {
    const pod = workload.spec.template!.spec;
    const where = `${workload.kind} ${workload.metadata.name}`;
    if (pod.securityContext?.runAsNonRoot !== true) found.push(`${where}: the pod does not set runAsNonRoot`);
    const isService = workload.spec.template!.metadata.labels["app.kubernetes.io/component"] === "service";
    for (const container of pod.containers) {
      const at = `${where}, container ${container.name}`;
      for (const probe of ["readinessProbe", "livenessProbe"] as const) {
        const spec = container[probe];
        if (!spec) found.push(`${at}: no ${probe}`);
        // The shopmesh services are probed over grpc.health.v1 (NATS has its own HTTP health endpoint).
        else if (isService && !(spec.grpc as { port?: number } | undefined)?.port)
          found.push(`${at}: ${probe} is not a gRPC probe`);
      }
      for (const kind of ["cpu", "memory"]) {
        if (!container.resources?.requests?.[kind]) found.push(`${at}: no ${kind} request`);
        if (!container.resources?.limits?.[kind]) found.push(`${at}: no ${kind} limit`);
      }
      const security = container.securityContext;
      if (security?.runAsNonRoot !== true) found.push(`${at}: runAsNonRoot is not true`);
      if (security?.readOnlyRootFilesystem !== true) found.push(`${at}: readOnlyRootFilesystem is not true`);
      if (security?.allowPrivilegeEscalation !== false) found.push(`${at}: allowPrivilegeEscalation is not false`);
      if (!security?.capabilities?.drop?.includes("ALL")) found.push(`${at}: capabilities do not drop ALL`);
      if (security?.seccompProfile?.type !== "RuntimeDefault")
        found.push(`${at}: seccompProfile is not RuntimeDefault`);
    }
  }
  const workload = (name: string) => workloads.find((o) => o.metadata.name === name);
  for (const name of sqliteServices) {
    const set = workload(name);
    if (set?.kind !== "StatefulSet") found.push(`${name}: not a StatefulSet`);
    else {
      if (set.spec.replicas !== 1) found.push(`${name}: ${set.spec.replicas} replicas, not one writer`);
      if ((set.spec.volumeClaimTemplates ?? []).length === 0) found.push(`${name}: no volumeClaimTemplate`);
    }
  }
  // Every relayed stream is kept on every NATS server, so that it outlives any one of them.
  const natsServers = workload("nats")?.spec.replicas ?? 0;
  for (const name of sqliteServices) {
    const env = (workload(name)?.spec.template?.spec.containers[0] as { env?: { name: string; value?: string }[] })
      ?.env;
    const replicas = env?.find((e) => e.name === "EVENTS_STREAM_REPLICAS")?.value ?? "1";
    if (Number(replicas) !== natsServers)
      found.push(`${name}: its stream has ${replicas} replicas on ${natsServers} NATS servers`);
  }
  const userOrders = workload("user-orders");
  if (!userOrders || (userOrders.spec.replicas ?? 1) < 2) found.push("user-orders: fewer than two replicas");
  // Ready only once its projection has caught up (the "projection" health name).
  const readiness = userOrders?.spec.template?.spec.containers[0]?.readinessProbe?.grpc as
    | { service?: string }
    | undefined;
  if (readiness?.service !== "projection") found.push("user-orders: readiness does not wait for the projection");

  // Network policies: what each allows, in call-graph terms.
  const policies = objects.filter((o) => o.kind === "NetworkPolicy");
  const selected = (policy: K8sObject) => policy.spec.podSelector?.matchLabels?.[nameLabel];
  const allowedIn = new Set<string>();
  const allowedOut = new Set<string>();
  for (const policy of policies) {
    const target = selected(policy);
    for (const [direction, rules] of [
      ["ingress", policy.spec.ingress ?? []],
      ["egress", policy.spec.egress ?? []],
    ] as const) {
      for (const rule of rules) {
        const peers = (direction === "ingress" ? rule.from : rule.to) ?? [];
        const ports = (rule.ports ?? []).map((p) => String(p.port));
        if (peers.length === 0 || ports.length === 0) {
          found.push(`NetworkPolicy ${policy.metadata.name}: an ${direction} rule open to any peer or port`);
          continue;
        }
        for (const peer of peers) {
          if (peer.namespaceSelector) {
            const namespace = peer.namespaceSelector.matchLabels?.["kubernetes.io/metadata.name"];
            const dns = direction === "egress" && namespace === "kube-system" && ports.every((p) => p === "53");
            const scrape = direction === "ingress" && namespace === "prometheus" && ports.every((p) => p === "metrics");
            if (!dns && !scrape)
              found.push(`NetworkPolicy ${policy.metadata.name}: ${direction} to namespace ${namespace} on ${ports}`);
            continue;
          }
          const other = peer.podSelector?.matchLabels?.[nameLabel];
          if (target === undefined || other === undefined) {
            found.push(`NetworkPolicy ${policy.metadata.name}: a ${direction} rule between unnamed pods`);
            continue;
          }
          for (const port of ports) {
            const edge =
              direction === "ingress" ? { from: other, to: target, port } : { from: target, to: other, port };
            (direction === "ingress" ? allowedIn : allowedOut).add(edgeKey(edge));
          }
        }
      }
    }
  }
  if (
    !policies.some(
      (p) => selected(p) === undefined && p.spec.policyTypes?.length === 2 && !p.spec.ingress && !p.spec.egress,
    )
  )
    found.push("no default-deny NetworkPolicy for ingress and egress");
  const graph = new Set(callGraph.map(edgeKey));
  for (const edge of graph) {
    if (!allowedIn.has(edge)) found.push(`call graph edge ${edge} has no ingress policy`);
    if (!allowedOut.has(edge)) found.push(`call graph edge ${edge} has no egress policy`);
  }
  for (const edge of new Set([...allowedIn, ...allowedOut]))
    if (!graph.has(edge)) found.push(`a NetworkPolicy allows ${edge}, which is not in the call graph`);
  return found;
}

describe("deploy/k8s", () => {
  for (const directory of ["base", "overlays/development"]) {
    it(`renders ${directory} with every rule kept`, { timeout: 60_000 }, () => {
      const objects = render(directory);
      expect(objects.length).toBeGreaterThan(10);
      expect(problems(objects)).toEqual([]);
    });
  }

  it("runs the development overlay in development mode with smaller resources", { timeout: 60_000 }, () => {
    const base = render("base");
    const development = render("overlays/development");
    const container = (objects: K8sObject[], name: string) =>
      objects.find((o) => o.metadata.name === name && o.spec.template)!.spec.template!.spec.containers[0]!;
    for (const name of [...sqliteServices, "user-orders"]) {
      const env = (container(development, name) as { env?: { name: string; value?: string }[] }).env ?? [];
      expect(env).toContainEqual({ name: "DEVELOPMENT_MODE", value: "on" });
      // The image's Node 24 flags give a 16 MiB young generation; the smaller limit wants the 4 MiB one.
      expect(env).toContainEqual({
        name: "SHOPMESH_SERVICE_NODE_FLAGS",
        value: defaultServiceNodeFlags("20.20.2").join(" "),
      });
      expect(container(development, name).resources?.limits?.memory).not.toBe(
        container(base, name).resources?.limits?.memory,
      );
    }
  });

  it("notices a container that loses a probe, a policy that allows too much, and a second writer", () => {
    const objects = render("base");
    const products = objects.find((o) => o.metadata.name === "products" && o.kind === "StatefulSet")!;
    delete products.spec.template!.spec.containers[0]!.readinessProbe;
    products.spec.replicas = 2;
    const usersIngress = objects.find((o) => o.metadata.name === "users-ingress")!;
    usersIngress.spec.ingress![0]!.from!.push({ podSelector: { matchLabels: { [nameLabel]: "nats" } } });
    const ordersEgress = objects.find((o) => o.metadata.name === "orders-egress")!;
    ordersEgress.spec.egress = ordersEgress.spec.egress!.filter((rule) => !rule.ports?.some((p) => p.port === "grpc"));
    expect(problems(objects)).toEqual(
      expect.arrayContaining([
        "StatefulSet products, container products: no readinessProbe",
        "products: 2 replicas, not one writer",
        "a NetworkPolicy allows nats -> users:grpc, which is not in the call graph",
        "call graph edge orders -> products:grpc has no egress policy",
      ]),
    );
  });
});
