// A multi-host mesh on one machine: every process on a host of its own (a
// network namespace with its own address), the hosts on a bridge of the
// cluster's own, names resolved through per-host hosts files, mutual TLS
// between the services, and three nats-server nodes clustered with
// JetStream as the event backbone.
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { defaultKeyFiles, ensureKeyPair } from "@shopmesh/chassis";
import { entryOf, serviceNodeFlags, type ServiceName } from "../mesh/local-mesh.js";
import { launchOnHost, type HostProcess } from "./host-process.js";
import { removeHostsFiles, writeHostsFiles, type HostsEntry } from "./hosts-files.js";
import {
  blackhole,
  createNetwork,
  namespacePids,
  newClusterId,
  removeBlackhole,
  removeNetwork,
  type ClusterNetwork,
  type NetworkHost,
} from "./network.js";
import { issueClusterCertificates, type ClusterCertificates } from "./tls-material.js";

/** The cluster's hosts, in the order they start. */
export const clusterHosts = [
  "nats-1",
  "nats-2",
  "nats-3",
  "users",
  "products",
  "orders",
  "user-orders-a",
  "user-orders-b",
  "client",
] as const;
export type ClusterHostName = (typeof clusterHosts)[number];

export const natsHosts = ["nats-1", "nats-2", "nats-3"] as const satisfies readonly ClusterHostName[];
export const userOrdersReplicas = ["user-orders-a", "user-orders-b"] as const satisfies readonly ClusterHostName[];
type ServiceHost = Exclude<ClusterHostName, (typeof natsHosts)[number] | "client">;

/** Each host's service. */
const serviceOf: Record<ServiceHost, ServiceName> = {
  users: "users",
  products: "products",
  orders: "orders",
  "user-orders-a": "user-orders",
  "user-orders-b": "user-orders",
};

/** Every service listens on its well-known port: each host has all ports to itself. */
export const clusterPorts: Record<ServiceName, number> = {
  users: 50051,
  products: 50052,
  orders: 50053,
  "user-orders": 50054,
};
const natsClientPort = 4222;
const natsRoutePort = 6222;

/** The NATS URLs every service is given: all three nodes, by name. */
export const natsUrls = natsHosts.map((host) => `nats://${host}:${natsClientPort}`).join(",");

/** What `shopmesh cluster down` needs to find a cluster again. */
export interface ClusterRecord {
  id: string;
  dir: string;
  network: ClusterNetwork;
  pids: { name: string; pid: number }[];
}

/** Options for {@link Cluster.up}. */
export interface ClusterOptions {
  /** Where data, logs, certificates and cluster.json go (default: a new temporary directory, removed by down). */
  dir?: string;
  /** Leave the processes running when this process exits (`shopmesh cluster up`). */
  detached?: boolean;
  /** Progress, one line at a time. */
  progress?: (line: string) => void;
  /** The nats-server executable (default: NATS_SERVER_BIN, else nats-server from PATH). */
  natsServer?: string;
  /** Further environment for a host's service (e.g. a dependency reached through a proxy). */
  serviceEnv?: Partial<Record<ClusterHostName, Record<string, string>>>;
}

const repositoryRoot = fileURLToPath(new URL("../../../..", import.meta.url));

export class Cluster {
  readonly processes = new Map<string, HostProcess>();
  readonly #removeDir: boolean;
  #down: Promise<string[]> | undefined;
  #goingDown = false;

  private constructor(
    readonly id: string,
    readonly dir: string,
    readonly network: ClusterNetwork,
    readonly certificates: ClusterCertificates,
    private readonly options: ClusterOptions,
  ) {
    this.#removeDir = options.dir === undefined;
  }

  /**
   * Creates the network, the hosts files and the certificates, then starts
   * NATS and the services host by host. On any failure everything made so
   * far is removed before the error is thrown.
   */
  static async up(options: ClusterOptions = {}): Promise<Cluster> {
    const cluster = await Cluster.create(options);
    try {
      await cluster.start();
      return cluster;
    } catch (error) {
      await cluster.down();
      throw error;
    }
  }

  /**
   * The network, the hosts files and the certificates, with no process yet
   * ({@link start} starts them). On a failure, what was made is removed.
   * Once this has resolved, {@link down} removes everything, so a caller
   * that may be interrupted holds the cluster from here on.
   */
  static async create(options: ClusterOptions = {}): Promise<Cluster> {
    const id = newClusterId();
    const dir = options.dir ?? mkdtempSync(join(tmpdir(), `shopmesh-cluster-${id}-`));
    mkdirSync(join(dir, "logs"), { recursive: true });
    (options.progress ?? (() => undefined))(`cluster ${id}: network`);
    const network = await createNetwork(id, clusterHosts);
    try {
      writeHostsFiles(network.hosts, hostsEntries(network));
      const certificates = issueClusterCertificates(join(dir, "tls"), network.hosts, {
        services: Object.fromEntries(Object.entries(serviceOf)),
        clients: ["client"],
      });
      ensureKeyPair(defaultKeyFiles(dir));
      const cluster = new Cluster(id, dir, network, certificates, options);
      cluster.#record();
      return cluster;
    } catch (error) {
      removeHostsFiles(network.hosts);
      await removeNetwork(network);
      if (options.dir === undefined) rmSync(dir, { recursive: true, force: true });
      throw error;
    }
  }

  /** Starts NATS, then the services in the order they depend on each other. */
  async start(): Promise<void> {
    const progress = this.options.progress ?? (() => undefined);
    progress(`cluster ${this.id}: nats`);
    await Promise.all(natsHosts.map((host) => this.startNats(host)));
    for (const group of [["users"], ["products"], ["orders"], userOrdersReplicas] as ServiceHost[][]) {
      progress(`cluster ${this.id}: ${group.join(", ")}`);
      await Promise.all(group.map((host) => this.startService(host)));
    }
  }

  host(name: ClusterHostName): NetworkHost {
    const host = this.network.hosts.find((h) => h.name === name);
    if (!host) throw new Error(`the cluster has no host ${name}`);
    return host;
  }

  /** Starts (or starts again) the nats-server of a NATS host, with its store kept. */
  async startNats(name: (typeof natsHosts)[number]): Promise<HostProcess> {
    const host = this.host(name);
    const store = join(this.dir, "hosts", name, "jetstream");
    mkdirSync(store, { recursive: true });
    const routes = natsHosts
      .filter((other) => other !== name)
      .map((other) => `nats://${other}:${natsRoutePort}`)
      .join(",");
    return this.#launch(name, host, {
      command: [
        this.options.natsServer ?? process.env.NATS_SERVER_BIN ?? "nats-server",
        "-js",
        "-n",
        name,
        "-a",
        host.address,
        "-p",
        String(natsClientPort),
        "-sd",
        store,
        "--cluster_name",
        `shopmesh-${this.id}`,
        "--cluster",
        `nats://${host.address}:${natsRoutePort}`,
        "--routes",
        routes,
      ],
      env: { PATH: process.env.PATH ?? "/usr/bin:/bin" },
      ready: (line) => line.includes("Server is ready"),
    });
  }

  /** Starts (or starts again) the service of a host, with its data kept. */
  async startService(name: ServiceHost): Promise<HostProcess> {
    const host = this.host(name);
    const service = serviceOf[name];
    const dataDir = join(this.dir, "hosts", name);
    mkdirSync(dataDir, { recursive: true });
    const identity = this.certificates.hosts[name]!;
    const keys = defaultKeyFiles(this.dir);
    const nodeFlags = serviceNodeFlags(process.versions.node);
    const target = (to: ServiceName) => `${to}:${clusterPorts[to]}`;
    const env: Record<string, string> = {
      ...inheritedEnv(),
      DEVELOPMENT_MODE: "on",
      ADMIN_EMAILS: "admin@shopmesh.local",
      LOG_LEVEL: "info",
      SHUTDOWN_GRACE: "2s",
      HOST: host.address,
      PORT: String(clusterPorts[service]),
      HTTP_PORT: "off",
      // Scraped from the client host, which counts the views each replica answered.
      METRICS_HOST: host.address,
      DATA_DIR: dataDir,
      TLS_CERT: identity.certFile,
      TLS_KEY: identity.keyFile,
      TLS_CA: identity.caFile,
      AUTH_PUBLIC_KEY_FILE: keys.publicKeyFile,
      ...(service === "users" ? { AUTH_PRIVATE_KEY_FILE: keys.privateKeyFile } : { USERS_TARGET: target("users") }),
      ...(service === "orders" ? { PRODUCTS_TARGET: target("products") } : {}),
      ...(service === "user-orders"
        ? { ORDERS_TARGET: target("orders"), PRODUCTS_TARGET: target("products"), EVENTS_SOURCE: "nats" }
        : { EVENTS_RELAY: "nats", EVENTS_STREAM_REPLICAS: "3" }),
      NATS_URL: natsUrls,
      ...this.options.serviceEnv?.[name],
    };
    return this.#launch(name, host, {
      command: [process.execPath, ...nodeFlags, "--import", "tsx", entryOf(service)],
      env,
      ready: (line) => line.includes('"msg":"ready"'),
    });
  }

  /** The host goes away: every process in its namespace is killed (SIGKILL), its address stays. */
  async killHost(name: ClusterHostName): Promise<void> {
    const host = this.host(name);
    const ours = [...this.processes.values()].filter((p) => p.host === host);
    await Promise.all(ours.map((p) => p.kill("SIGKILL")));
    for (const p of ours) this.processes.delete(p.name);
    // Anything else started in the namespace (a command run there by hand) goes with the host.
    for (const pid of await namespacePids(host.namespace)) killQuietly(pid);
    this.#record();
  }

  /** Starts a killed host's processes again. */
  async restartHost(name: ClusterHostName): Promise<void> {
    if ((natsHosts as readonly string[]).includes(name)) await this.startNats(name as (typeof natsHosts)[number]);
    else if (name in serviceOf) await this.startService(name as ServiceHost);
    else throw new Error(`${name} runs no process of the cluster's own`);
  }

  /** Drops every packet between two hosts, both ways, while each keeps talking to every other host. */
  async partition(a: ClusterHostName, b: ClusterHostName): Promise<void> {
    await blackhole(this.host(a), this.host(b));
    await blackhole(this.host(b), this.host(a));
  }

  /** Ends a {@link partition}. */
  async heal(a: ClusterHostName, b: ClusterHostName): Promise<void> {
    await removeBlackhole(this.host(a), this.host(b));
    await removeBlackhole(this.host(b), this.host(a));
  }

  /**
   * Kills every process, removes the namespaces, the bridge, the hosts
   * files, and the directory when the cluster made it. Safe to call more
   * than once; returns what could not be removed.
   */
  down(): Promise<string[]> {
    this.#down ??= (async () => {
      // A start still under way launches nothing more.
      this.#goingDown = true;
      await Promise.all([...this.processes.values()].map((p) => p.kill("SIGKILL")));
      this.processes.clear();
      const failures = await tearDown(this.network);
      if (this.#removeDir) rmSync(this.dir, { recursive: true, force: true });
      else rmSync(join(this.dir, "cluster.json"), { force: true });
      return failures;
    })();
    return this.#down;
  }

  /** Starts a further node program on a host (a TypeScript entry, run with tsx), ready when it logs `ready`. */
  launchNode(
    hostName: ClusterHostName,
    name: string,
    entry: string,
    env: Record<string, string>,
  ): Promise<HostProcess> {
    return this.#launch(name, this.host(hostName), {
      command: [process.execPath, "--import", "tsx", entry],
      env: { ...inheritedEnv(), ...env },
      ready: (line) => line.includes('"msg":"ready"'),
    });
  }

  /** The last lines of every process's log, for a failure's message (the logs go with the cluster). */
  logTails(lines = 6): string {
    const logs = join(this.dir, "logs");
    const files = existsSync(logs) ? readdirSync(logs).sort() : [];
    return files
      .map((file) => {
        const tail = readFileSync(join(logs, file), "utf8").trimEnd().split("\n").slice(-lines);
        return `--- ${file}\n${tail.map((line) => line.slice(0, 300)).join("\n")}`;
      })
      .join("\n");
  }

  async #launch(
    name: string,
    host: NetworkHost,
    what: { command: string[]; env: Record<string, string>; ready: (line: string) => boolean },
  ): Promise<HostProcess> {
    if (this.#goingDown) throw new Error(`cluster ${this.id} is going down: ${name} not started`);
    const started = await launchOnHost({
      name,
      host,
      ...what,
      logFile: join(this.dir, "logs", `${name}.log`),
      cwd: repositoryRoot,
      detached: this.options.detached,
    });
    if (this.#goingDown) {
      // Became ready while the cluster went down: its namespace may be gone already, the process is not.
      await started.kill("SIGKILL");
      throw new Error(`cluster ${this.id} is going down: ${name} stopped`);
    }
    this.processes.set(name, started);
    void started.exited.then(() => {
      if (this.processes.get(name) === started) this.processes.delete(name);
    });
    this.#record();
    return started;
  }

  #record(): void {
    const record: ClusterRecord = {
      id: this.id,
      dir: this.dir,
      network: this.network,
      pids: [...this.processes.values()].map((p) => ({ name: p.name, pid: p.pid })),
    };
    writeFileSync(join(this.dir, "cluster.json"), `${JSON.stringify(record, null, 2)}\n`);
  }
}

/** The hosts files' entries: every host by name, and `user-orders` for both replicas. */
function hostsEntries(network: ClusterNetwork): HostsEntry[] {
  return network.hosts.map((host) => ({
    address: host.address,
    names: (userOrdersReplicas as readonly string[]).includes(host.name) ? [host.name, "user-orders"] : [host.name],
  }));
}

/**
 * Kills whatever still runs in the cluster's namespaces, then removes the
 * namespaces, the bridge and the hosts files. Never throws; returns what
 * could not be removed.
 */
export async function tearDown(network: ClusterNetwork): Promise<string[]> {
  for (const host of network.hosts) {
    for (const pid of await namespacePids(host.namespace)) killQuietly(pid);
  }
  removeHostsFiles(network.hosts);
  return removeNetwork(network);
}

/** Tears down the cluster a `cluster.json` describes (`shopmesh cluster down`). */
export async function tearDownRecorded(recordFile: string): Promise<{ record: ClusterRecord; failures: string[] }> {
  const record = JSON.parse(readFileSync(recordFile, "utf8")) as ClusterRecord;
  // Only processes still inside the cluster's namespaces are killed: a recorded pid may belong to another by now.
  const failures = await tearDown(record.network);
  return { record, failures };
}

function killQuietly(pid: number): void {
  try {
    process.kill(pid, "SIGKILL");
  } catch {
    // Already gone.
  }
}

/** What a service process inherits: enough to run node, nothing that points at another mesh. */
function inheritedEnv(): Record<string, string> {
  const env: Record<string, string> = {};
  for (const name of ["PATH", "HOME", "NODE_OPTIONS", "TMPDIR", "LANG", "TSX_TSCONFIG_PATH"]) {
    const value = process.env[name];
    if (value !== undefined) env[name] = value;
  }
  return env;
}
