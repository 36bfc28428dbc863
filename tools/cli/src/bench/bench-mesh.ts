import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { spawnService, type ServiceProcess, type SpawnServiceOptions } from "../process/spawn-service.js";
import type { ClientTlsOptions } from "@shopmesh/sdk";
import { LocalMesh, serviceNames, type ServiceName } from "../mesh/local-mesh.js";
import { findBusyPorts, type BusyPort } from "../mesh/port-check.js";

/** The admin account of a bench mesh. */
export const benchAdminEmail = "admin@bench.shopmesh.local";

/**
 * Second products processes, each with one thing changed from the mesh's
 * own, so that what that thing costs per call is measured in the same run:
 * TLS off, metrics off (METRICS_PORT=off: no call histogram), or tracing on
 * and exporting every span over OTLP/HTTP. They are read against
 * products-control, started the same way with nothing changed: the mesh's
 * own products process also seeded the data and feeds user-orders' stream,
 * and the gap between it and the control is the noise between two
 * processes that should measure the same.
 */
export const productsVariants = ["products-control", "products-plaintext", "products-lean", "products-traced"] as const;
export type ProductsVariant = (typeof productsVariants)[number];

/**
 * The four services a second time, on the stack a connect-es user would
 * build instead: each serves its gRPC port with connect-node's adapter on
 * node:http2 (GRPC_SERVER=connect-node), user-orders calls the other three
 * with connect-node's gRPC client (DEPENDENCY_CLIENT=connect-node), and the
 * bench calls them with connect-node's client too. Handlers, interceptors,
 * admission and data are the mesh's own (they serve reads only, on its
 * databases), so the difference is the stack alone.
 */
export const connectNodeProcesses = {
  "users-connect-node": "users",
  "products-connect-node": "products",
  "orders-connect-node": "orders",
  "user-orders-connect-node": "user-orders",
} as const satisfies Record<string, ServiceName>;
export type ConnectNodeProcess = keyof typeof connectNodeProcesses;
const connectNodeProcessNames = Object.keys(connectNodeProcesses) as ConnectNodeProcess[];

/** The processes a bench loads: the four services, the products variants, the connect-node stack and the bare baseline server. */
export type BenchProcessName = ServiceName | ProductsVariant | ConnectNodeProcess | "bare-baseline";

/** Which port each process of a bench gets, from `--port-base`. */
export function benchPorts(base: number): Record<BenchProcessName, number> {
  return {
    users: base,
    products: base + 1,
    orders: base + 2,
    "user-orders": base + 3,
    "bare-baseline": base + 4,
    "products-control": base + 6,
    "products-plaintext": base + 7,
    "products-lean": base + 8,
    "products-traced": base + 9,
    "users-connect-node": base + 10,
    "products-connect-node": base + 11,
    "orders-connect-node": base + 12,
    "user-orders-connect-node": base + 13,
  };
}

/** The bare baseline's second port, where it answers over TLS: the one after its plaintext port. */
export function bareTlsPort(ports: Record<BenchProcessName, number>): number {
  return ports["bare-baseline"] + 1;
}

/** The ports of `ports` (and the bare baseline's TLS port) that something already holds (the admin listeners take free ports). */
export function busyPorts(ports: Record<BenchProcessName, number>): Promise<BusyPort[]> {
  return findBusyPorts([
    ...Object.entries(ports).map(([what, port]) => ({ port, what })),
    { port: bareTlsPort(ports), what: "bare-baseline over TLS" },
  ]);
}

/** What each products variant changes from the mesh's products process. */
function variantEnv(variant: ProductsVariant, otlpEndpoint: string): Record<string, string> {
  switch (variant) {
    case "products-control":
      return {};
    case "products-plaintext":
      return { TLS: "off" };
    case "products-lean":
      return { METRICS_PORT: "off" };
    case "products-traced":
      // Every call sampled; a batch goes out when full or after a second (the SDK's defaults otherwise).
      return {
        OTEL_EXPORTER_OTLP_ENDPOINT: otlpEndpoint,
        OTEL_TRACES_SAMPLER: "always_on",
        OTEL_BSP_SCHEDULE_DELAY: "1000",
      };
  }
}

/** Options for {@link BenchMesh.start}. */
export interface BenchMeshOptions {
  /** Extra environment per process (the CPU profiler's preload, say). */
  extraEnv?: Partial<Record<BenchProcessName, Record<string, string>>>;
  /** The products variants to start beside the mesh. */
  variants?: readonly ProductsVariant[];
  /** Start the four services on the connect-node stack too (see {@link connectNodeProcesses}). */
  withConnectNode?: boolean;
  /**
   * Run every server process (the services and the bare baseline) on this
   * Node.js executable, with better-sqlite3's addon built for it when
   * `sqliteBinding` is given (SQLITE_NATIVE_BINDING).
   */
  node?: { path: string; sqliteBinding?: string };
}

/** A fresh temporary data directory for a bench mesh. */
export function newBenchDataDir(): string {
  return mkdtempSync(join(tmpdir(), "shopmesh-bench-"));
}

const bareEntry = fileURLToPath(new URL("./bare-baseline-server.ts", import.meta.url));
const sinkEntry = fileURLToPath(new URL("./otlp-sink.ts", import.meta.url));

/**
 * The mesh under test (four services in a temporary data directory) plus the
 * bare baseline server, each its own process on a fixed port.
 */
export class BenchMesh {
  #stopped = false;

  private constructor(
    readonly dataDir: string,
    readonly mesh: LocalMesh,
    readonly bare: ServiceProcess,
    readonly stderr: Map<BenchProcessName, string>,
    /** Where the bare baseline answers over TLS; undefined when the mesh runs without TLS. */
    private readonly bareTlsPort: number,
    /** The products variants started (see {@link productsVariants}). */
    readonly variants: Map<ProductsVariant, ServiceProcess>,
    /** The OTLP sink of products-traced, when that variant runs. */
    readonly otlpSink: ServiceProcess | undefined,
    /** The services on the connect-node stack, when they run (see {@link connectNodeProcesses}). */
    readonly connectNode: Map<ConnectNodeProcess, ServiceProcess>,
  ) {}

  /**
   * Starts everything with its data in `dataDir` (see {@link newBenchDataDir});
   * the caller removes the directory if this fails. The products variants in
   * `variants` start once the mesh is up, on products' own database (they
   * serve reads only), and so do the services on the connect-node stack
   * when `withConnectNode` says so.
   */
  static async start(
    ports: Record<BenchProcessName, number>,
    dataDir: string,
    options: BenchMeshOptions = {},
  ): Promise<BenchMesh> {
    const { extraEnv = {}, variants = [], withConnectNode = false, node } = options;
    // On another Node.js, every server process runs on it, with better-sqlite3's addon built for it.
    const onNode: Partial<SpawnServiceOptions> = node === undefined ? {} : { node: node.path };
    const nodeEnv: Record<string, string> =
      node?.sqliteBinding === undefined ? {} : { SQLITE_NATIVE_BINDING: node.sqliteBinding };
    const stderr = new Map<BenchProcessName, string>();
    const keepStderr = (name: BenchProcessName) => (text: string) => {
      const sofar = stderr.get(name) ?? "";
      if (sofar.length < 16 * 1024) stderr.set(name, sofar + text);
    };
    // "info" is quiet under load (each call is logged at debug) and spawnService needs the info-level ready line.
    // ADMIN_PORT=0: the loopback fault-injection listener takes any free port, not one that might be taken.
    const common = { LOG_LEVEL: "info", ADMIN_PORT: "0", SHUTDOWN_GRACE: "2s", ...nodeEnv };
    let mesh: LocalMesh | undefined;
    const started: ServiceProcess[] = [];
    try {
      mesh = await LocalMesh.start({
        dataDir,
        extraIdentities: ["bare-baseline"],
        ports: {
          users: ports.users,
          products: ports.products,
          orders: ports.orders,
          "user-orders": ports["user-orders"],
        },
        env: Object.fromEntries(
          serviceNames.map((service) => [
            service,
            {
              ...common,
              ...(service === "users"
                ? { ADMIN_EMAILS: benchAdminEmail, PASSWORD_HASH_COST: "1024", TOKEN_TTL: "2h" }
                : {}),
              ...extraEnv[service],
            },
          ]),
        ),
        spawn: (service) => ({ ...onNode, keepLogs: false, onStderr: keepStderr(service) }),
      });
      const bare = await spawnService({
        ...onNode,
        entry: bareEntry,
        env: {
          PORT: String(ports["bare-baseline"]),
          ...bareTls(mesh, bareTlsPort(ports)),
          ...extraEnv["bare-baseline"],
        },
        keepLogs: false,
        onStderr: keepStderr("bare-baseline"),
      });
      started.push(bare);
      const otlpSink = variants.includes("products-traced")
        ? await spawnService({ entry: sinkEntry, keepLogs: false })
        : undefined;
      if (otlpSink !== undefined) started.push(otlpSink);
      const running = new Map<ProductsVariant, ServiceProcess>();
      const meshStarted = mesh;
      await Promise.all(
        variants.map(async (variant) => {
          const variantProcess = await meshStarted.spawn("products", {
            ...common,
            PORT: String(ports[variant]),
            ...variantEnv(variant, `http://127.0.0.1:${otlpSink?.port ?? 9}`),
            ...extraEnv[variant],
          });
          started.push(variantProcess);
          running.set(variant, variantProcess);
        }),
      );
      const connectNode = new Map<ConnectNodeProcess, ServiceProcess>();
      const spawnConnectNode = async (name: ConnectNodeProcess, env: Record<string, string> = {}) => {
        const spawned = await meshStarted.spawn(connectNodeProcesses[name], {
          ...common,
          PORT: String(ports[name]),
          GRPC_SERVER: "connect-node",
          ...env,
          ...extraEnv[name],
        });
        started.push(spawned);
        connectNode.set(name, spawned);
      };
      if (withConnectNode) {
        await Promise.all(
          (["users-connect-node", "products-connect-node", "orders-connect-node"] as const).map((name) =>
            spawnConnectNode(name),
          ),
        );
        const target = (name: ConnectNodeProcess) => `127.0.0.1:${ports[name]}`;
        await spawnConnectNode("user-orders-connect-node", {
          DEPENDENCY_CLIENT: "connect-node",
          USERS_TARGET: target("users-connect-node"),
          ORDERS_TARGET: target("orders-connect-node"),
          PRODUCTS_TARGET: target("products-connect-node"),
          // Only STRONG views are loaded on this stack.
          PROJECTION: "off",
        });
      }
      return new BenchMesh(dataDir, mesh, bare, stderr, bareTlsPort(ports), running, otlpSink, connectNode);
    } catch (error) {
      await Promise.all([mesh?.stop("SIGKILL"), ...started.map((process) => process.stop("SIGKILL"))]);
      throw error;
    }
  }

  /** Every process's pid, by name. */
  pids(): Map<BenchProcessName, number> {
    const pids = new Map<BenchProcessName, number>();
    for (const [service, process] of this.mesh.processes)
      if (process.child.pid !== undefined) pids.set(service, process.child.pid);
    if (this.bare.child.pid !== undefined) pids.set("bare-baseline", this.bare.child.pid);
    for (const [variant, process] of this.variants)
      if (process.child.pid !== undefined) pids.set(variant, process.child.pid);
    for (const [name, process] of this.connectNode)
      if (process.child.pid !== undefined) pids.set(name, process.child.pid);
    return pids;
  }

  address(name: BenchProcessName): string {
    if (name === "bare-baseline") return this.bare.address;
    if (isVariant(name)) return this.#variant(name).address;
    if (isConnectNode(name)) {
      const found = this.connectNode.get(name);
      if (found === undefined) throw new Error(`${name} was not started for this bench`);
      return found.address;
    }
    return this.mesh.address(name);
  }

  /**
   * TLS options for a client of a process: the services' CA; the bare
   * baseline's own port and products-plaintext speak plaintext.
   */
  clientTls(name: BenchProcessName): ClientTlsOptions | undefined {
    if (name === "bare-baseline" || name === "products-plaintext") return undefined;
    return this.mesh.clientTls(isVariant(name) ? "products" : isConnectNode(name) ? connectNodeProcesses[name] : name);
  }

  /** What the OTLP sink received: exports and bytes; undefined without products-traced. */
  async otlpSinkStats(): Promise<{ exports: number; bytes: number } | undefined> {
    if (this.otlpSink === undefined) return undefined;
    const response = await fetch(`http://127.0.0.1:${this.otlpSink.port}/stats`);
    return (await response.json()) as { exports: number; bytes: number };
  }

  #variant(name: ProductsVariant): ServiceProcess {
    const found = this.variants.get(name);
    if (found === undefined) throw new Error(`${name} was not started for this bench`);
    return found;
  }

  /** The bare baseline over TLS: its address and client options, undefined when the mesh runs without TLS. */
  bareOverTls(): { address: string; tls: ClientTlsOptions } | undefined {
    const tls = this.mesh.clientTls(undefined);
    return tls === undefined
      ? undefined
      : { address: `127.0.0.1:${this.bareTlsPort}`, tls: { ...tls, service: "bare-baseline" } };
  }

  /** Stops every process and removes the data directory; safe to call twice. */
  async stop(signal: NodeJS.Signals = "SIGTERM"): Promise<void> {
    if (this.#stopped) return;
    this.#stopped = true;
    await Promise.all([
      this.mesh.stop(signal),
      this.bare.stop(signal),
      ...[...this.variants.values(), ...this.connectNode.values()].map((process) => process.stop(signal)),
      this.otlpSink?.stop(signal),
    ]);
    rmSync(this.dataDir, { recursive: true, force: true });
  }
}

/** The bare baseline's TLS settings: its own certificate from the mesh's CA, or none without TLS. */
function bareTls(mesh: LocalMesh, port: number): Record<string, string> {
  const identity = mesh.certificates?.identities["bare-baseline"];
  if (identity === undefined) return {};
  return { TLS_PORT: String(port), TLS_CERT: identity.certFile, TLS_KEY: identity.keyFile, TLS_CA: identity.caFile };
}

function isVariant(name: BenchProcessName): name is ProductsVariant {
  return (productsVariants as readonly string[]).includes(name);
}

function isConnectNode(name: BenchProcessName): name is ConnectNodeProcess {
  return (connectNodeProcessNames as string[]).includes(name);
}
