import { execFileSync } from "node:child_process";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { readFileSync } from "node:fs";
import {
  defaultKeyFiles,
  ensureDevelopmentCertificates,
  ensureKeyPair,
  type DevelopmentCertificates,
} from "@shopmesh/chassis";
import {
  spawnService,
  type ServiceProcess,
  type SpawnServiceOptions,
  type StopOptions,
} from "../process/spawn-service.js";
import type { ClientTlsOptions } from "@shopmesh/sdk";

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
 * Flags `node` gets for every service process on a Node.js release (a
 * version such as "24.18.1" or "v20.20.2"), unless SHOPMESH_SERVICE_NODE_FLAGS
 * says otherwise (see {@link serviceNodeFlags}). They go on the command line,
 * since NODE_OPTIONS refuses most V8 flags. Under load V8 grows its young
 * generation and keeps it resident, and lets the old generation grow up to
 * four times what survived the last full collection before collecting again:
 * fixed at twice, so that user-orders, whose views stay in flight long enough
 * to be promoted, stays near a bare server's memory, at the price of more
 * frequent full collections. The young generation is capped by release: at
 * 4 MiB semi-spaces on Node 20, where 16 MiB took the services to the bench's
 * memory limit; at 16 MiB on Node 24, whose bare server is larger and where
 * 4 MiB cost user-orders CPU per view (the figures are in
 * docs/performance-notes.md). Node 20 and 24 take both
 * (tools/cli/test/local-mesh.test.ts checks the running one).
 */
export function defaultServiceNodeFlags(nodeVersion: string): readonly string[] {
  const major = Number(/^v?(\d+)\./.exec(nodeVersion)?.[1]);
  if (!Number.isInteger(major)) throw new Error(`not a Node.js version: ${JSON.stringify(nodeVersion)}`);
  return [`--max-semi-space-size=${major >= 24 ? 16 : 4}`, "--heap-growing-percent=100"];
}

/**
 * The flags a service process gets on that Node.js release: the space-separated
 * SHOPMESH_SERVICE_NODE_FLAGS when it is set (empty: none), the defaults otherwise.
 */
export function serviceNodeFlags(nodeVersion: string, env: NodeJS.ProcessEnv = process.env): readonly string[] {
  const flags = env.SHOPMESH_SERVICE_NODE_FLAGS;
  return flags === undefined ? defaultServiceNodeFlags(nodeVersion) : flags.split(/\s+/).filter(Boolean);
}

const nodeVersions = new Map<string, string>([[process.execPath, process.versions.node]]);

/** The version of the Node.js at `executable` ("24.18.1"), asked once per path. */
export function nodeVersionOf(executable: string): string {
  let version = nodeVersions.get(executable);
  if (version === undefined) {
    version = execFileSync(executable, ["-p", "process.versions.node"], { encoding: "utf8" }).trim();
    nodeVersions.set(executable, version);
  }
  return version;
}

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
  /**
   * Mutual TLS between the services and TLS for every caller (default on):
   * a development CA and one certificate per service under `<dataDir>/tls`,
   * made on the first start and reused, renewed when close to expiry. Off
   * runs every service with TLS=off.
   */
  tls?: boolean;
  /** Further identities to issue certificates for beside the services' (e.g. a test's impostor). */
  extraIdentities?: readonly string[];
  /**
   * Abandons the start: a service still starting and every service already
   * ready are stopped, and {@link LocalMesh.start} rejects once they have
   * exited. A later start of a service (a restart) is abandoned too.
   */
  signal?: AbortSignal;
}

/**
 * How long a service stopped because the mesh did not start (or its start
 * was abandoned) may drain after SIGTERM before it gets SIGKILL.
 */
export const failedStartGraceMs = 5000;

/**
 * A mesh of real service processes on loopback that share one data
 * directory: the one mechanism behind `npm start`, the experiment, the
 * benchmark and the integration tests.
 */
export class LocalMesh {
  readonly processes = new Map<ServiceName, ServiceProcess>();

  private constructor(
    private readonly options: LocalMeshOptions,
    /** The development CA and certificates; undefined with TLS off. */
    readonly certificates: DevelopmentCertificates | undefined,
  ) {}

  static async start(options: LocalMeshOptions): Promise<LocalMesh> {
    ensureKeyPair(defaultKeyFiles(options.dataDir));
    const certificates =
      options.tls === false
        ? undefined
        : ensureDevelopmentCertificates(join(options.dataDir, "tls"), [
            ...serviceNames,
            ...(options.extraIdentities ?? []),
          ]);
    const mesh = new LocalMesh(options, certificates);
    const wanted = options.services ?? serviceNames;
    for (const group of startGroups) {
      // Every start of a group settles before a failure is thrown, so that a service that
      // became ready beside one that failed is stopped too rather than left running.
      const starts = options.signal?.aborted
        ? [{ status: "rejected" as const, reason: new Error("mesh start abandoned") }]
        : await Promise.allSettled(group.filter((s) => wanted.includes(s)).map((s) => mesh.startService(s)));
      const failed = starts.find((start): start is PromiseRejectedResult => start.status === "rejected");
      if (failed) {
        await mesh.stop("SIGTERM", { killAfterMs: failedStartGraceMs });
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
   * second instance configured differently). The caller stops it. A node
   * that cannot be asked its version rejects the start (it does not throw).
   */
  async spawn(service: ServiceName, extraEnv: Record<string, string> = {}): Promise<ServiceProcess> {
    const port = this.options.ports?.[service];
    const spawnOptions = this.options.spawn?.(service);
    const nodeArgs = serviceNodeFlags(nodeVersionOf(spawnOptions?.node ?? process.execPath));
    const identity = this.certificates?.identities[service];
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
      ...(identity === undefined
        ? { TLS: "off" }
        : { TLS_CERT: identity.certFile, TLS_KEY: identity.keyFile, TLS_CA: identity.caFile }),
      ...this.#targetsFor(service),
      ...this.options.env?.[service],
      ...extraEnv,
    };
    return spawnService({
      signal: this.options.signal,
      ...spawnOptions,
      entry: entryOf(service),
      env,
      nodeArgs: [...nodeArgs, ...(spawnOptions?.nodeArgs ?? [])],
    });
  }

  /**
   * TLS options for a client of `service` (the SDK's `tls`): the mesh's CA,
   * and with `as`, that identity's certificate for mutual TLS. Undefined
   * when the mesh runs without TLS.
   */
  clientTls(service: ServiceName | undefined, as?: string): ClientTlsOptions | undefined {
    const certificates = this.certificates;
    if (certificates === undefined) return undefined;
    const identity = as === undefined ? undefined : certificates.identities[as];
    if (as !== undefined && identity === undefined) throw new Error(`the mesh has no certificate for ${as}`);
    return {
      ca: readFileSync(certificates.caFile),
      ...(identity === undefined ? {} : { cert: readFileSync(identity.certFile), key: readFileSync(identity.keyFile) }),
      ...(service === undefined ? {} : { service }),
    };
  }

  /** `127.0.0.1:port` of a running service. */
  address(service: ServiceName): string {
    return this.#running(service).address;
  }

  /** `127.0.0.1:port` of a running service's loopback admin listener. */
  adminAddress(service: ServiceName): string {
    return `127.0.0.1:${this.#running(service).adminPort}`;
  }

  /**
   * `https://127.0.0.1:port` of a running service's HTTP listener (Connect,
   * gRPC-Web), whose certificate the mesh's CA signed; `http://` with TLS off.
   */
  httpUrl(service: ServiceName): string {
    const { httpPort } = this.#running(service);
    if (httpPort === undefined) throw new Error(`${service} runs without an HTTP listener (HTTP_PORT=off)`);
    return `${this.certificates === undefined ? "http" : "https"}://127.0.0.1:${httpPort}`;
  }

  /**
   * Stops every service (SIGTERM drains; SIGKILL does not wait); with
   * `killAfterMs`, one still running that long after SIGTERM gets SIGKILL.
   */
  async stop(signal: NodeJS.Signals = "SIGTERM", options: StopOptions = {}): Promise<void> {
    await Promise.all([...this.processes.values()].map((p) => p.stop(signal, options)));
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
      };
    }
    return {};
  }
}
