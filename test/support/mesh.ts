import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import type { Client } from "@connectrpc/connect";
import { defaultKeyFiles, ensureKeyPair } from "@shopmesh/chassis";
import { spawnService, type ServiceProcess } from "@shopmesh/chassis/testing";
import { createClient, createTransport, type GrpcTransport } from "@shopmesh/sdk";
import { OrdersService } from "@shopmesh/sdk/orders/v1";
import { ProductsService } from "@shopmesh/sdk/products/v1";
import { UserOrdersService } from "@shopmesh/sdk/userorders/v1";
import { UsersService } from "@shopmesh/sdk/users/v1";
import { FaultInjectionService } from "@shopmesh/sdk/faults/v1";

export type ServiceName = "users" | "products" | "orders" | "user-orders";

const root = fileURLToPath(new URL("../..", import.meta.url));
export const entryOf = (service: ServiceName) => join(root, "services", service, "src", "main.ts");

/** The admin account every test mesh has. */
export const adminEmail = "admin@shopmesh.test";

/**
 * A throw-away mesh for integration tests: real service processes on free
 * loopback ports, each with its SQLite file in one temporary directory that
 * `stop()` removes.
 */
export class TestMesh {
  readonly processes = new Map<ServiceName, ServiceProcess>();
  readonly #extras: ServiceProcess[] = [];
  readonly #transports: GrpcTransport[] = [];

  private constructor(
    readonly dataDir: string,
    readonly envFor: (service: ServiceName) => Record<string, string>,
  ) {}

  static async start(
    services: ServiceName[],
    env: Partial<Record<ServiceName, Record<string, string>>> = {},
  ): Promise<TestMesh> {
    const dataDir = mkdtempSync(join(tmpdir(), "shopmesh-test-"));
    ensureKeyPair(defaultKeyFiles(dataDir));
    const mesh = new TestMesh(dataDir, (service) => ({
      DATA_DIR: dataDir,
      ADMIN_EMAILS: adminEmail,
      SHUTDOWN_GRACE: "2s",
      ...env[service],
    }));
    try {
      // orders needs the products address, user-orders everybody's.
      for (const group of [["users", "products"], ["orders"], ["user-orders"]]) {
        await Promise.all(services.filter((s) => group.includes(s)).map((s) => mesh.startService(s)));
      }
    } catch (error) {
      await mesh.stop();
      throw error;
    }
    return mesh;
  }

  /** Starts (or restarts) one service on a free port with the mesh's data directory. */
  async startService(service: ServiceName, extraEnv: Record<string, string> = {}): Promise<ServiceProcess> {
    const started = await this.#spawn(service, extraEnv);
    this.processes.set(service, started);
    return started;
  }

  /**
   * Starts a second instance of a service beside the mesh's own (same data
   * directory), for a test that needs it configured differently. `stop()`
   * ends it too.
   */
  async startExtra(service: ServiceName, extraEnv: Record<string, string>): Promise<ServiceProcess> {
    const started = await this.#spawn(service, extraEnv);
    this.#extras.push(started);
    return started;
  }

  #spawn(service: ServiceName, extraEnv: Record<string, string>): Promise<ServiceProcess> {
    const env = { ...this.envFor(service), ...extraEnv };
    const addressOr = (name: ServiceName) => this.processes.get(name)?.address ?? "127.0.0.1:9";
    if (service === "orders" || service === "user-orders") env.PRODUCTS_TARGET ??= addressOr("products");
    if (service === "user-orders") {
      env.USERS_TARGET ??= addressOr("users");
      env.ORDERS_TARGET ??= addressOr("orders");
    }
    return spawnService({ entry: entryOf(service), env });
  }

  /** A typed client for a service process that is not one of the mesh's own. */
  clientAt<S extends ServiceName>(service: S, address: string, token?: string): Client<ServiceOf<S>> {
    const transport = createTransport({ target: address, token });
    this.#transports.push(transport);
    return createClient(services[service] as ServiceOf<S>, transport);
  }

  address(service: ServiceName): string {
    const found = this.processes.get(service);
    if (!found) throw new Error(`${service} is not running in this mesh`);
    return found.address;
  }

  /** A typed client for a service, optionally sending a bearer token. */
  client<S extends ServiceName>(service: S, token?: string): Client<ServiceOf<S>> {
    return this.clientAt(service, this.address(service), token);
  }

  /** The fault-injection admin client of a running service (start it with FAULT_INJECTION=on). */
  faults(service: ServiceName): Client<typeof FaultInjectionService> {
    const found = this.processes.get(service);
    if (!found) throw new Error(`${service} is not running in this mesh`);
    const transport = createTransport({ target: `127.0.0.1:${found.adminPort}` });
    this.#transports.push(transport);
    return createClient(FaultInjectionService, transport);
  }

  async stop(): Promise<void> {
    for (const transport of this.#transports.splice(0)) transport.close();
    await Promise.all([...this.processes.values(), ...this.#extras].map((p) => p.stop("SIGKILL")));
    this.processes.clear();
    rmSync(this.dataDir, { recursive: true, force: true });
  }
}

const services = {
  users: UsersService,
  products: ProductsService,
  orders: OrdersService,
  "user-orders": UserOrdersService,
} as const;
type ServiceOf<S extends ServiceName> = (typeof services)[S];

let counter = 0;
/** A fresh customer: signs up and returns its id and token. */
export async function signUpCustomer(mesh: TestMesh, name = "customer"): Promise<{ userId: string; token: string; email: string }> {
  const email = `${name}-${process.pid}-${++counter}@shopmesh.test`;
  const { user, session } = await mesh.client("users").signUp({ email, password: "correct horse", displayName: name });
  return { userId: user!.id, token: session!.accessToken, email };
}

/** The mesh's admin: signs up on first use, signs in after. */
export async function adminToken(mesh: TestMesh): Promise<string> {
  const users = mesh.client("users");
  try {
    return (await users.signUp({ email: adminEmail, password: "admin password", displayName: "Admin" })).session!.accessToken;
  } catch {
    return (await users.signIn({ email: adminEmail, password: "admin password" })).session!.accessToken;
  }
}
