import { join } from "node:path";
import { fileURLToPath } from "node:url";
import {
  defaultKeyFiles,
  ensureKeyPair,
  mintServiceToken,
  readPem,
  spawnService,
  type ServiceProcess,
  type SpawnServiceOptions,
} from "@shopmesh/chassis";

/** The services of a mesh, in the order they can start. */
export const serviceNames = ["users", "products", "orders", "user-orders"] as const;
export type ServiceName = (typeof serviceNames)[number];

/**
 * Who must be up before whom: every service fetches the token signing keys
 * from users (so it needs users' address), orders needs products, and
 * user-orders needs everyone.
 */
const startGroups: ServiceName[][] = [["users"], ["products"], ["orders"], ["user-orders"]];

const root = fileURLToPath(new URL("../../../..", import.meta.url));

/** The entry point of a service. */
export function entryOf(service: ServiceName): string {
  return join(root, "services", service, "src", "main.ts");
}

/**
 * Flags `node` gets for every service process unless SHOPMESH_SERVICE_NODE_FLAGS
 * (space-separated) says otherwise. They go on the command line, since
 * NODE_OPTIONS refuses most V8 flags. Under load V8 grows its young
 * generation to 16 MiB semi-spaces and keeps it resident: capped at 4 MiB.
 * And it lets the old generation grow up to four times what survived the
 * last full collection before collecting again; user-orders, whose views are
 * in flight for long enough to be promoted, peaked at 211 MiB in the bench
 * (1.46x the bare server) and at 157 MiB (1.10x) with growth fixed at 2x
 * (--heap-growing-percent=100). Full collections come more often: about 10 %
 * more CPU per one-order view (1,094-1,146 vs 959-1,064 µs, two runs each;
 * 3,446 vs 3,397 µs for one run each of 20-order views).
 */
export const defaultServiceNodeFlags = ["--max-semi-space-size=4", "--heap-growing-percent=100"];

/** How long the service token a mesh gives user-orders for the event streams lives. */
const serviceTokenTtlSeconds = 30 * 24 * 3600;

/** Options for {@link LocalMesh.start}. */
export interface LocalMeshOptions {
  /** Where every service keeps its SQLite file; the token key pair is made here too. */
  dataDir: string;
  /** Which services to run (default: all four). */
  services?: readonly ServiceName[];
  /** Fixed ports; a service without one gets a free port. */
  ports?: Partial<Record<ServiceName, number>>;
  /** Extra environment for each service. */
  env?: Partial<Record<ServiceName, Record<string, string>>>;
  /** Spawn options for each service's process (log handling). */
  spawn?: (service: ServiceName) => Partial<SpawnServiceOptions>;
}

/**
 * A mesh of real service processes on loopback that share one data
 * directory: the one mechanism behind `npm start`, the experiment, the
 * benchmark and the integration tests.
 */
export class LocalMesh {
  readonly processes = new Map<ServiceName, ServiceProcess>();

  private constructor(
    private readonly options: LocalMeshOptions,
    /** The service token user-orders reads the event streams with. */
    readonly eventsToken: string,
  ) {}

  static async start(options: LocalMeshOptions): Promise<LocalMesh> {
    const keys = defaultKeyFiles(options.dataDir);
    ensureKeyPair(keys);
    const eventsToken = await mintServiceToken(
      readPem(keys.privateKeyFile, "token signing key"),
      "user-orders",
      serviceTokenTtlSeconds,
    );
    const mesh = new LocalMesh(options, eventsToken);
    const wanted = options.services ?? serviceNames;
    for (const group of startGroups) {
      // Every start of a group settles before a failure is thrown, so that a service that
      // became ready beside one that failed is stopped too rather than left running.
      const starts = await Promise.allSettled(group.filter((s) => wanted.includes(s)).map((s) => mesh.startService(s)));
      const failed = starts.find((start): start is PromiseRejectedResult => start.status === "rejected");
      if (failed) {
        await mesh.stop("SIGKILL");
        throw failed.reason;
      }
    }
    return mesh;
  }

  /** Starts (or restarts) a service with the mesh's settings plus `extraEnv`. */
  async startService(service: ServiceName, extraEnv: Record<string, string> = {}): Promise<ServiceProcess> {
    const started = await this.spawn(service, extraEnv);
    this.processes.set(service, started);
    return started;
  }

  /**
   * Starts a service process that is not the mesh's own (for example a
   * second instance configured differently). The caller stops it.
   */
  spawn(service: ServiceName, extraEnv: Record<string, string> = {}): Promise<ServiceProcess> {
    const port = this.options.ports?.[service];
    const flags = process.env.SHOPMESH_SERVICE_NODE_FLAGS;
    const nodeArgs = flags === undefined ? defaultServiceNodeFlags : flags.split(/\s+/).filter(Boolean);
    const env: Record<string, string> = {
      // A local mesh is for development: faults may be injected without an admin token.
      DEVELOPMENT_MODE: "on",
      DATA_DIR: this.options.dataDir,
      PORT: String(port ?? 0),
      // A free port unless told otherwise (npm start gives each its own): a
      // service restarted on its old PORT would otherwise want PORT + 2000,
      // which an outgoing connection may hold by then.
      METRICS_PORT: process.env.METRICS_PORT?.trim().toLowerCase() === "off" ? "off" : "0",
      // A free port unless the mesh's env names one (npm start does): 1000 above a fixed port may be taken.
      HTTP_PORT: "0",
      ...this.#targetsFor(service),
      ...this.options.env?.[service],
      ...extraEnv,
    };
    const spawnOptions = this.options.spawn?.(service);
    return spawnService({
      ...spawnOptions,
      entry: entryOf(service),
      env,
      nodeArgs: [...nodeArgs, ...(spawnOptions?.nodeArgs ?? [])],
    });
  }

  /** `127.0.0.1:port` of a running service. */
  address(service: ServiceName): string {
    return this.#running(service).address;
  }

  /** `127.0.0.1:port` of a running service's loopback admin listener. */
  adminAddress(service: ServiceName): string {
    return `127.0.0.1:${this.#running(service).adminPort}`;
  }

  /** `http://127.0.0.1:port` of a running service's HTTP listener (Connect, gRPC-Web). */
  httpUrl(service: ServiceName): string {
    const { httpPort } = this.#running(service);
    if (httpPort === undefined) throw new Error(`${service} runs without an HTTP listener (HTTP_PORT=off)`);
    return `http://127.0.0.1:${httpPort}`;
  }

  /** Stops every service (SIGTERM drains; SIGKILL does not wait). */
  async stop(signal: NodeJS.Signals = "SIGTERM"): Promise<void> {
    await Promise.all([...this.processes.values()].map((p) => p.stop(signal)));
    this.processes.clear();
  }

  #running(service: ServiceName): ServiceProcess {
    const found = this.processes.get(service);
    if (!found) throw new Error(`${service} is not running in this mesh`);
    return found;
  }

  /** Where a service's dependencies are: running ones, else their fixed ports. */
  #targetsFor(service: ServiceName): Record<string, string> {
    const target = (name: ServiceName) => {
      const running = this.processes.get(name);
      if (running) return running.address;
      const port = this.options.ports?.[name];
      return port ? `127.0.0.1:${port}` : "127.0.0.1:9";
    };
    if (service === "products") return { USERS_TARGET: target("users") };
    if (service === "orders") return { USERS_TARGET: target("users"), PRODUCTS_TARGET: target("products") };
    if (service === "user-orders") {
      return {
        USERS_TARGET: target("users"),
        ORDERS_TARGET: target("orders"),
        PRODUCTS_TARGET: target("products"),
        EVENTS_TOKEN: this.eventsToken,
      };
    }
    return {};
  }
}
