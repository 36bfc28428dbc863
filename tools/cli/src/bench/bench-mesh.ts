import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { spawnService, type ServiceProcess } from "../process/spawn-service.js";
import type { ClientTlsOptions } from "@shopmesh/sdk";
import { LocalMesh, serviceNames, type ServiceName } from "../mesh/local-mesh.js";
import { findBusyPorts, type BusyPort } from "../mesh/port-check.js";

/** The admin account of a bench mesh. */
export const benchAdminEmail = "admin@bench.shopmesh.local";

/** The processes a bench loads: the four services and the bare baseline server. */
export type BenchProcessName = ServiceName | "bare-baseline";

/** Which port each process of a bench gets, from `--port-base`. */
export function benchPorts(base: number): Record<BenchProcessName, number> {
  return { users: base, products: base + 1, orders: base + 2, "user-orders": base + 3, "bare-baseline": base + 4 };
}

/** The bare baseline's second port, where it answers over TLS: the one after the five of {@link benchPorts}. */
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

/** A fresh temporary data directory for a bench mesh. */
export function newBenchDataDir(): string {
  return mkdtempSync(join(tmpdir(), "shopmesh-bench-"));
}

const bareEntry = fileURLToPath(new URL("./bare-baseline-server.ts", import.meta.url));

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
  ) {}

  /** Starts everything with its data in `dataDir` (see {@link newBenchDataDir}); the caller removes the directory if this fails. */
  static async start(
    ports: Record<BenchProcessName, number>,
    dataDir: string,
    extraEnv: Partial<Record<BenchProcessName, Record<string, string>>> = {},
  ): Promise<BenchMesh> {
    const stderr = new Map<BenchProcessName, string>();
    const keepStderr = (name: BenchProcessName) => (text: string) => {
      const sofar = stderr.get(name) ?? "";
      if (sofar.length < 16 * 1024) stderr.set(name, sofar + text);
    };
    // "info" is quiet under load (each call is logged at debug) and spawnService needs the info-level ready line.
    // ADMIN_PORT=0: the loopback fault-injection listener takes any free port, not one that might be taken.
    const common = { LOG_LEVEL: "info", ADMIN_PORT: "0", SHUTDOWN_GRACE: "2s" };
    let mesh: LocalMesh | undefined;
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
        spawn: (service) => ({ keepLogs: false, onStderr: keepStderr(service) }),
      });
      const bare = await spawnService({
        entry: bareEntry,
        env: {
          PORT: String(ports["bare-baseline"]),
          ...bareTls(mesh, bareTlsPort(ports)),
          ...extraEnv["bare-baseline"],
        },
        keepLogs: false,
        onStderr: keepStderr("bare-baseline"),
      });
      return new BenchMesh(dataDir, mesh, bare, stderr, bareTlsPort(ports));
    } catch (error) {
      await mesh?.stop("SIGKILL");
      throw error;
    }
  }

  /** Every process's pid, by name. */
  pids(): Map<BenchProcessName, number> {
    const pids = new Map<BenchProcessName, number>();
    for (const [service, process] of this.mesh.processes)
      if (process.child.pid !== undefined) pids.set(service, process.child.pid);
    if (this.bare.child.pid !== undefined) pids.set("bare-baseline", this.bare.child.pid);
    return pids;
  }

  address(name: BenchProcessName): string {
    return name === "bare-baseline" ? this.bare.address : this.mesh.address(name);
  }

  /** TLS options for a client of a process: the services' CA; the bare baseline's own port speaks plaintext. */
  clientTls(name: BenchProcessName): ClientTlsOptions | undefined {
    return name === "bare-baseline" ? undefined : this.mesh.clientTls(name);
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
    await Promise.all([this.mesh.stop(signal), this.bare.stop(signal)]);
    rmSync(this.dataDir, { recursive: true, force: true });
  }
}

/** The bare baseline's TLS settings: its own certificate from the mesh's CA, or none without TLS. */
function bareTls(mesh: LocalMesh, port: number): Record<string, string> {
  const identity = mesh.certificates?.identities["bare-baseline"];
  if (identity === undefined) return {};
  return { TLS_PORT: String(port), TLS_CERT: identity.certFile, TLS_KEY: identity.keyFile, TLS_CA: identity.caFile };
}
