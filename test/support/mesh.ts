import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { Client } from "@connectrpc/connect";
import type { ServiceProcess } from "@shopmesh/cli";
import { LocalMesh, type ServiceName } from "@shopmesh/cli";
import { createClient, createTransport, type ClientTlsOptions, type GrpcTransport } from "@shopmesh/sdk";
import { FaultInjectionService } from "@shopmesh/sdk/faults/v1";
import { OrdersService } from "@shopmesh/sdk/orders/v1";
import { ProductsService } from "@shopmesh/sdk/products/v1";
import { UserOrdersService } from "@shopmesh/sdk/userorders/v1";
import { UsersService } from "@shopmesh/sdk/users/v1";
import { afterAll } from "vitest";
import { trustingFetch, type TrustingFetch } from "./trusting-fetch.js";

export { entryOf, type ServiceName } from "@shopmesh/cli";

/**
 * Mesh starts still under way. A start that outlives its hook's timeout is
 * given up by vitest but goes on, and its services would outlive the test
 * file's worker; when the file is done, such a start is abandoned, which
 * stops what it had started.
 */
const startsUnderWay = new Set<{ abandon: AbortController; settled: Promise<unknown> }>();
afterAll(async () => {
  const pending = [...startsUnderWay];
  for (const start of pending) start.abandon.abort();
  await Promise.allSettled(pending.map((start) => start.settled));
});

/** The admin account every test mesh has. */
export const adminEmail = "admin@shopmesh.test";

/**
 * A throw-away mesh for integration tests: real service processes on free
 * loopback ports, each with its SQLite file in one temporary directory that
 * `stop()` removes; plus typed clients and admin clients for the tests.
 */
export class TestMesh {
  readonly #extras: ServiceProcess[] = [];
  readonly #transports: GrpcTransport[] = [];
  #fetch: TrustingFetch | undefined;
  readonly #fetches: TrustingFetch[] = [];

  private constructor(
    readonly dataDir: string,
    private readonly mesh: LocalMesh,
    /** The end of what each service wrote to stderr, to tell why one died. */
    private readonly stderrTails: Map<ServiceName, string>,
  ) {}

  /**
   * Says on the test's stderr when one of the mesh's services exits by
   * itself with an error, with what it last wrote: the test then fails
   * later with a refused connection that does not say which service went
   * away, or why. Stops with a signal (the tests' own) are not reported.
   * Told on 'close', when its output has all been read, not on 'exit'.
   */
  #watch(service: ServiceName, running: ServiceProcess): ServiceProcess {
    running.child.once("close", (code, signal) => {
      if (signal !== null || code === 0) return;
      const errors = running.logs.filter((entry) => typeof entry.level === "number" && entry.level >= 50).slice(-5);
      console.error(
        `test mesh: ${service} (pid ${running.child.pid}, port ${running.port}) exited with code ${code}\n` +
          `its last error logs: ${JSON.stringify(errors)}\n` +
          `its stderr ended with: ${this.stderrTails.get(service) ?? ""}`,
      );
    });
    return running;
  }

  /**
   * Starts `services` with mutual TLS (a throw-away CA in the mesh's data
   * directory) unless `options.tls` is false; `extraIdentities` get
   * certificates too, for a test that calls as a service it is not.
   */
  static async start(
    services: ServiceName[],
    env: Partial<Record<ServiceName, Record<string, string>>> = {},
    options: { tls?: boolean; extraIdentities?: string[] } = {},
  ): Promise<TestMesh> {
    const dataDir = mkdtempSync(join(tmpdir(), "shopmesh-test-"));
    const common = { ADMIN_EMAILS: adminEmail, SHUTDOWN_GRACE: "2s", LOG_LEVEL: "info" };
    const abandon = new AbortController();
    const stderrTails = new Map<ServiceName, string>();
    const starting = (async () => {
      const mesh = await LocalMesh.start({
        dataDir,
        services,
        spawn: (service) => ({
          onStderr: (text) => stderrTails.set(service, ((stderrTails.get(service) ?? "") + text).slice(-4096)),
        }),
        env: Object.fromEntries(services.map((s) => [s, { ...common, ...env[s] }])),
        tls: options.tls,
        extraIdentities: options.extraIdentities,
        signal: abandon.signal,
      });
      if (abandon.signal.aborted) {
        // Abandoned as its last service became ready: nobody holds this mesh.
        await mesh.stop("SIGKILL");
        throw new Error("mesh start abandoned");
      }
      return mesh;
    })();
    const underWay = { abandon, settled: starting.catch(() => undefined) };
    startsUnderWay.add(underWay);
    try {
      const started = new TestMesh(dataDir, await starting, stderrTails);
      for (const [service, running] of started.processes) started.#watch(service, running);
      return started;
    } catch (error) {
      rmSync(dataDir, { recursive: true, force: true });
      throw error;
    } finally {
      startsUnderWay.delete(underWay);
    }
  }

  /** The mesh's own processes, by service. */
  get processes(): Map<ServiceName, ServiceProcess> {
    return this.mesh.processes;
  }

  /** Starts (or restarts) one service on a free port with the mesh's data directory. */
  async startService(service: ServiceName, extraEnv: Record<string, string> = {}): Promise<ServiceProcess> {
    return this.#watch(service, await this.mesh.startService(service, extraEnv));
  }

  /**
   * Stops one of the mesh's services (SIGKILL unless told otherwise) and
   * returns a function that starts it again on the same port, where the
   * services that call it will look for it.
   */
  async stopService(service: ServiceName, signal: NodeJS.Signals = "SIGKILL"): Promise<() => Promise<ServiceProcess>> {
    const running = this.mesh.processes.get(service);
    if (!running) throw new Error(`${service} is not running in this mesh`);
    const port = running.address.split(":").at(-1)!;
    await running.stop(signal);
    // The admin listener on a free port again: by default it would go 20000 below PORT, which for a
    // port from the ephemeral range may itself be in that range and held by then.
    return () => this.startService(service, { PORT: port, ADMIN_PORT: "0" });
  }

  /**
   * Starts a second instance of a service beside the mesh's own (same data
   * directory), for a test that needs it configured differently. `stop()`
   * ends it too.
   */
  async startExtra(service: ServiceName, extraEnv: Record<string, string>): Promise<ServiceProcess> {
    // A second user-orders keeps its own projection rather than share the mesh's.
    const ownDatabase: Record<string, string> =
      service === "user-orders" && !extraEnv.DB_PATH
        ? { DB_PATH: join(this.dataDir, `user-orders-${++extraCount}.sqlite`) }
        : {};
    const started = await this.mesh.spawn(service, { ...ownDatabase, ...extraEnv });
    this.#extras.push(started);
    return started;
  }

  /**
   * A typed client for a service process that is not one of the mesh's own;
   * with `as`, it presents that identity's certificate (mutual TLS).
   */
  clientAt<S extends ServiceName>(service: S, address: string, token?: string, as?: string): Client<ServiceOf<S>> {
    const transport = createTransport({ target: address, token, tls: this.clientTls(service, as) });
    this.#transports.push(transport);
    return createClient(services[service] as ServiceOf<S>, transport);
  }

  /** TLS options for a client of `service` (the mesh's CA, and `as`'s certificate); undefined without TLS. */
  clientTls(service: ServiceName | undefined, as?: string): ClientTlsOptions | undefined {
    return this.mesh.clientTls(service, as);
  }

  /** The mesh's development certificates (undefined without TLS). */
  get certificates() {
    return this.mesh.certificates;
  }

  address(service: ServiceName): string {
    return this.mesh.address(service);
  }

  /** `https://127.0.0.1:port` of a service's HTTP listener (Connect, gRPC-Web); `http://` without TLS. */
  httpUrl(service: ServiceName): string {
    return this.mesh.httpUrl(service);
  }

  /** fetch for the HTTP listeners, trusting the mesh's CA as a caller given `--cacert` would. */
  get httpFetch(): typeof globalThis.fetch {
    const certificates = this.mesh.certificates;
    this.#fetch ??= trustingFetch(certificates && readFileSync(certificates.caFile));
    return this.#fetch.fetch;
  }

  /** fetch for the HTTP listeners that also presents identity `as`'s mesh certificate (TLS only). */
  httpFetchAs(as: string): typeof globalThis.fetch {
    const tls = this.mesh.clientTls(undefined, as);
    if (tls?.cert === undefined || tls.key === undefined) throw new Error("the mesh runs without TLS");
    const fetch = trustingFetch(tls.ca, { cert: tls.cert, key: tls.key });
    this.#fetches.push(fetch);
    return fetch.fetch;
  }

  /**
   * A typed client for a service, optionally sending a bearer token, and
   * with `as` presenting that identity's certificate (e.g. "user-orders" for
   * the event streams).
   */
  client<S extends ServiceName>(service: S, token?: string, as?: string): Client<ServiceOf<S>> {
    return this.clientAt(service, this.address(service), token, as);
  }

  /** The fault-injection admin client of a running service (start it with FAULT_INJECTION=on). */
  faults(service: ServiceName): Client<typeof FaultInjectionService> {
    const transport = createTransport({ target: this.mesh.adminAddress(service) });
    this.#transports.push(transport);
    return createClient(FaultInjectionService, transport);
  }

  async stop(): Promise<void> {
    for (const transport of this.#transports.splice(0)) transport.close();
    await Promise.all([this.#fetch, ...this.#fetches.splice(0)].map((fetch) => fetch?.close()));
    await Promise.all([this.mesh.stop("SIGKILL"), ...this.#extras.map((p) => p.stop("SIGKILL"))]);
    rmSync(this.dataDir, { recursive: true, force: true });
  }
}

let extraCount = 0;

const services = {
  users: UsersService,
  products: ProductsService,
  orders: OrdersService,
  "user-orders": UserOrdersService,
} as const;
type ServiceOf<S extends ServiceName> = (typeof services)[S];

let counter = 0;
/** A fresh customer: signs up and returns its id and token. */
export async function signUpCustomer(
  mesh: TestMesh,
  name = "customer",
): Promise<{ userId: string; token: string; email: string }> {
  const email = `${name}-${process.pid}-${++counter}@shopmesh.test`;
  const { user, session } = await mesh.client("users").signUp({ email, password: "correct horse", displayName: name });
  return { userId: user!.id, token: session!.accessToken, email };
}

/** The mesh's admin: signs up on first use, signs in after. */
export async function adminToken(mesh: TestMesh): Promise<string> {
  const users = mesh.client("users");
  try {
    return (await users.signUp({ email: adminEmail, password: "admin password", displayName: "Admin" })).session!
      .accessToken;
  } catch {
    return (await users.signIn({ email: adminEmail, password: "admin password" })).session!.accessToken;
  }
}
