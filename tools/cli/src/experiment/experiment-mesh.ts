import type { Client } from "@connectrpc/connect";
import { durationFromMs } from "@bufbuild/protobuf/wkt";
import type { DependencyName } from "@shopmesh/user-orders/dependencies";
import { createClient, createTransport, type ClientTlsOptions, type GrpcTransport } from "@shopmesh/sdk";
import { FaultInjectionService } from "@shopmesh/sdk/faults/v1";
import { UserOrdersService } from "@shopmesh/sdk/userorders/v1";
import { LocalMesh, serviceNames, type ServiceName } from "../mesh/local-mesh.js";
import { findBusyPorts, type BusyPort } from "../mesh/port-check.js";
import type { ServiceProcess } from "../process/spawn-service.js";
import { sourceHeads } from "../mesh/projection-progress.js";

/**
 * First port of the experiment's mesh: users, products, orders, user-orders
 * follow. Below Linux's ephemeral range (32768-60999), where an outgoing
 * connection could hold one, and away from npm start's ports and admin listeners.
 */
export const defaultPortBase = 30251;

/** The fixed ports of a mesh starting at `base`. */
export function portsFrom(base: number): Record<ServiceName, number> {
  return { users: base, products: base + 1, orders: base + 2, "user-orders": base + 3 };
}

/** Every port the mesh needs that something already holds (the admin listeners take free ports). */
export function busyPorts(base: number): Promise<BusyPort[]> {
  return findBusyPorts(Object.entries(portsFrom(base)).map(([what, port]) => ({ port, what })));
}

/** The dependencies the aggregator calls; the experiment injects faults into these methods. */
export const dependencyMethods = {
  users: "GetUser",
  orders: "ListOrders",
  products: "BatchGetProducts",
} as const satisfies Record<DependencyName, string>;
/** In the order the report lists them. */
export const dependencies = Object.keys(dependencyMethods) as DependencyName[];

/** One fault for a dependency's method, as the experiment sets it. */
export interface FaultSpec {
  latencyMs?: number;
  slowProbability?: number;
  errorRate?: number;
  errorCode?: string;
  /** Calls never answer: they wait for their deadline. */
  hang?: boolean;
}

/** The same fault on every dependency. */
export function onEveryDependency(fault: FaultSpec): Record<DependencyName, FaultSpec> {
  return { users: fault, orders: fault, products: fault };
}

/** A fixed delay on products or on all three dependencies; none for 0 ms. */
export function delayFaults(delayed: "products" | "all", delayMs: number): Partial<Record<DependencyName, FaultSpec>> {
  if (delayMs === 0) return {};
  const fault = { latencyMs: delayMs };
  return delayed === "products" ? { products: fault } : onEveryDependency(fault);
}

/** The admin account of the experiment's mesh. */
export const adminAccount = {
  email: "admin@experiment.shopmesh.local",
  password: "experiment-admin",
  displayName: "Experiment Admin",
};

/**
 * What a service needs to export its spans over OTLP/HTTP to `endpoint`, but
 * only of calls that arrive with a sampled `traceparent`: the sampler records
 * no trace a service would start itself.
 */
export function tracingEnv(endpoint: string): Record<string, string> {
  return {
    OTEL_EXPORTER_OTLP_ENDPOINT: endpoint,
    // What the receiver takes; the installed OTLP/HTTP exporter sends nothing else.
    OTEL_EXPORTER_OTLP_TRACES_PROTOCOL: "http/json",
    OTEL_TRACES_SAMPLER: "parentbased_always_off",
    // Exported within a moment of ending rather than every 5 s.
    OTEL_BSP_SCHEDULE_DELAY: "50",
  };
}

/** Settings every user-orders variant starts from: no stale copies, so that "failed" means failed. */
const aggregatorBase: Record<string, string> = { STALE_CACHE_SIZE: "0" };

/**
 * The mesh the experiment measures: the four services as real processes on
 * fixed loopback ports, fault injection on, and user-orders restartable with
 * other settings between scenario variants.
 */
export class ExperimentMesh {
  /** The settings user-orders runs with now, beyond the base ones (none at start). */
  /** What user-orders runs with on top of the base settings. */
  #aggregatorExtra: Record<string, string> = {};
  /** What every service started from now on runs with besides (tracing, once it is on). */
  #serviceExtra: Record<string, string> = {};
  readonly #transports: GrpcTransport[] = [];
  readonly #extraAggregators = new Set<Promise<ServiceProcess>>();

  private constructor(
    readonly mesh: LocalMesh,
    readonly ports: Record<ServiceName, number>,
  ) {}

  static async start(dataDir: string, portBase: number): Promise<ExperimentMesh> {
    // ADMIN_PORT=0: each admin listener takes a free port, which the mesh reads from the service's ready line.
    const common = { HOST: "127.0.0.1", LOG_LEVEL: "info", SHUTDOWN_GRACE: "1s", ADMIN_PORT: "0" };
    const faulty = { ...common, FAULT_INJECTION: "on" };
    const ports = portsFrom(portBase);
    const mesh = await LocalMesh.start({
      dataDir,
      ports,
      env: {
        users: { ...faulty, ADMIN_EMAILS: adminAccount.email, PASSWORD_HASH_COST: "1024" },
        products: faulty,
        orders: faulty,
        "user-orders": { ...common, ...aggregatorBase },
      },
      // Nothing reads the services' logs; keeping every line would grow without bound.
      spawn: () => ({ keepLogs: false }),
    });
    return new ExperimentMesh(mesh, ports);
  }

  address(service: ServiceName): string {
    return `127.0.0.1:${this.ports[service]}`;
  }

  /** Restarts user-orders with `env` on top of the base settings, unless it already runs with them. */
  async configureAggregator(env: Record<string, string>): Promise<void> {
    const key = (settings: Record<string, string>) => JSON.stringify(Object.entries(settings).sort());
    if (key(env) === key(this.#aggregatorExtra)) return;
    await this.mesh.processes.get("user-orders")?.stop("SIGTERM");
    await this.mesh.startService("user-orders", { ...this.#serviceExtra, ...aggregatorBase, ...env });
    this.#aggregatorExtra = { ...env };
  }

  /**
   * Starts a second user-orders process with `env` on top of the base
   * settings, on a free port and without a projection (it serves STRONG
   * views only), beside the mesh's own one. The caller may stop it; the
   * mesh stops it at the latest when it stops.
   */
  spawnAggregator(env: Record<string, string>): Promise<ServiceProcess> {
    const started = this.mesh.spawn("user-orders", { ...aggregatorBase, ...env, PORT: "0", PROJECTION: "off" });
    this.#extraAggregators.add(started);
    // A failed start is the caller's to report; it has nothing left to stop.
    started.catch(() => this.#extraAggregators.delete(started));
    return started;
  }

  /** A GetUserOrders client sending `token`, to the mesh's user-orders or the one at `target`. */
  view(token: string, target = this.address("user-orders")): Client<typeof UserOrdersService> {
    const transport = createTransport({ target, token, tls: this.clientTls("user-orders") });
    this.#transports.push(transport);
    return createClient(UserOrdersService, transport);
  }

  /** Replaces the faults of the three dependencies: each one named in `faults` gets its fault, the others none. */
  async setFaults(faults: Partial<Record<DependencyName, FaultSpec>>): Promise<void> {
    await Promise.all(
      dependencies.map((dependency) =>
        this.#withAdmin(dependency, async (admin) => {
          await admin.clearFaults({}, { timeoutMs: 3000 });
          const spec = faults[dependency];
          if (spec) await admin.setFault({ fault: faultOf(dependencyMethods[dependency], spec) }, { timeoutMs: 3000 });
        }),
      ),
    );
  }

  /**
   * Sets (or with no `spec`, removes) a fault on one method of one service,
   * leaving its other faults alone: for methods other than the aggregator's
   * dependency calls, such as StreamEvents.
   */
  async setMethodFault(service: DependencyName, method: string, spec?: FaultSpec): Promise<void> {
    await this.#withAdmin(service, async (admin) => {
      if (spec) await admin.setFault({ fault: faultOf(method, spec) }, { timeoutMs: 3000 });
      else await admin.clearFaults({ method }, { timeoutMs: 3000 });
    });
  }

  /** Runs `use` with a client of the service's loopback fault-injection listener. */
  async #withAdmin(
    service: DependencyName,
    use: (admin: Client<typeof FaultInjectionService>) => Promise<void>,
  ): Promise<void> {
    const transport = createTransport({ target: this.mesh.adminAddress(service) });
    try {
      await use(createClient(FaultInjectionService, transport));
    } finally {
      transport.close();
    }
  }

  /** Kills a service at once (no draining), as a crash would. */
  async kill(service: ServiceName): Promise<void> {
    await this.mesh.processes.get(service)?.stop("SIGKILL");
    this.mesh.processes.delete(service);
  }

  /** Starts a killed service again on its port (user-orders with the settings it had). */
  async restart(service: ServiceName): Promise<void> {
    await this.mesh.startService(service, {
      ...this.#serviceExtra,
      ...(service === "user-orders" ? { ...aggregatorBase, ...this.#aggregatorExtra } : {}),
    });
  }

  /**
   * Restarts the four services with tracing to `endpoint` (see tracingEnv)
   * and user-orders with the default settings. Tracing is off until then:
   * its hooks (an AsyncLocalStorage context in every service) cost every
   * call CPU even when nothing is recorded.
   */
  async traceTo(endpoint: string): Promise<void> {
    this.#serviceExtra = tracingEnv(endpoint);
    this.#aggregatorExtra = {};
    // The reader first, so that the sources do not wait for its streams to close.
    await this.mesh.processes.get("user-orders")?.stop("SIGTERM");
    await Promise.all(
      (["users", "products", "orders"] as const).map((service) => this.mesh.processes.get(service)?.stop("SIGTERM")),
    );
    for (const service of serviceNames) await this.restart(service);
  }

  /**
   * The newest event sequence number of each source, asked of the source
   * itself: StreamEvents, asked with user-orders' certificate, opens with a
   * heartbeat carrying the head, after which the stream is dropped. This is
   * what the projection must reach, independent of what it reports.
   */
  sourceHeads(): Promise<Record<DependencyName, bigint>> {
    return sourceHeads(this.mesh);
  }

  /** TLS options for a client of `service` (see LocalMesh.clientTls). */
  clientTls(service: ServiceName | undefined, as?: string): ClientTlsOptions | undefined {
    return this.mesh.clientTls(service, as);
  }

  async stop(signal: NodeJS.Signals = "SIGTERM"): Promise<void> {
    for (const transport of this.#transports.splice(0)) transport.close();
    const extra = [...this.#extraAggregators];
    this.#extraAggregators.clear();
    await Promise.all([
      ...extra.map((started) => started.then((aggregator) => aggregator.stop(signal)).catch(() => undefined)),
      this.mesh.stop(signal),
    ]);
  }
}

export { serviceNames };

/** The Fault message for `spec` on `method`. */
function faultOf(method: string, spec: FaultSpec) {
  return {
    method,
    latency: durationFromMs(spec.latencyMs ?? 0),
    slowProbability: spec.slowProbability ?? 0,
    errorRate: spec.errorRate ?? 0,
    errorCode: spec.errorCode ?? "",
    hang: spec.hang ?? false,
  };
}
