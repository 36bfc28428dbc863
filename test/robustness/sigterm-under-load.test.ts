// A SIGTERM while calls are in flight, over real processes: user-orders,
// under a steady load of STRONG views that each wait on a slowed products,
// is told to stop. Every call in flight at that moment is answered by the
// server (OK, or UNAVAILABLE for one it could no longer take) before the
// process exits 0; none is cut off, and none runs into its deadline. Calls
// still running when the grace period is over are answered UNAVAILABLE.
import { Code, ConnectError, createClient, createTransport, type GrpcTransport } from "@shopmesh/sdk";
import { UserOrdersService } from "@shopmesh/sdk/userorders/v1";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { ServiceProcess } from "@shopmesh/cli";
import { adminToken, signUpCustomer, TestMesh } from "../support/mesh.js";
import { waitUntil } from "../support/projection-check.js";

/** How long products takes to answer, so that every view is in flight for at least that long. */
const productsLatencyMs = 150;
/** Far beyond the shutdown grace (2 s in a test mesh): a call that hangs shows as DEADLINE_EXCEEDED. */
const callDeadlineMs = 20_000;
const loops = 16;
/** Upper bound on the calls of one loop. */
const callsPerLoop = 300;

let mesh: TestMesh;
const transports: GrpcTransport[] = [];

beforeAll(async () => {
  mesh = await TestMesh.start(["users", "products", "orders", "user-orders"], {
    users: { PASSWORD_HASH_COST: "1024" },
    products: { FAULT_INJECTION: "on" },
    "user-orders": { SHUTDOWN_GRACE: "5s" },
  });
}, 60_000);

afterAll(async () => {
  for (const transport of transports.splice(0)) transport.close();
  await mesh?.stop();
});

interface CallOutcome {
  startedAt: number;
  endedAt: number;
  code: Code | "OK";
  message?: string;
}

/** A customer with one order of a product, and products slowed down so that every STRONG view takes at least that long. */
async function slowViewsOf(): Promise<{ userId: string; token: string }> {
  const products = mesh.client("products", await adminToken(mesh));
  const { product } = await products.createProduct({
    name: "Tea",
    description: "",
    price: { currencyCode: "EUR", minorUnits: 450n },
  });
  const customer = await signUpCustomer(mesh, "drain");
  await mesh
    .client("orders", customer.token)
    .createOrder({ requestId: "drain-1", items: [{ productId: product!.id, quantity: 1 }] });
  await mesh
    .faults("products")
    .setFault({ fault: { method: "BatchGetProducts", latency: { seconds: 0n, nanos: productsLatencyMs * 1e6 } } });
  return customer;
}

/**
 * Keeps `loops` STRONG views in flight on `userOrders` (each loop one call
 * after another, over four connections) until it has exited, and sends it
 * SIGTERM once the load is under way. Every call's outcome is kept.
 */
async function terminateUnderLoad(userOrders: ServiceProcess, customer: { userId: string; token: string }) {
  let exitedAt: number | undefined;
  userOrders.child.once("exit", () => (exitedAt = performance.now()));
  const outcomes: CallOutcome[] = [];
  // Several connections, as several callers would have.
  const views = Array.from({ length: 4 }, () => {
    const transport = createTransport({
      target: userOrders.address,
      token: customer.token,
      tls: mesh.clientTls("user-orders"),
      channelOptions: { "grpc.use_local_subchannel_pool": 1 },
    });
    transports.push(transport);
    return createClient(UserOrdersService, transport);
  });
  const loop = async (index: number) => {
    const view = views[index % views.length]!;
    for (let n = 0; n < callsPerLoop && exitedAt === undefined; n++) {
      const startedAt = performance.now();
      try {
        await view.getUserOrders({ userId: customer.userId }, { timeoutMs: callDeadlineMs });
        outcomes.push({ startedAt, endedAt: performance.now(), code: "OK" });
      } catch (error) {
        const { code, rawMessage } = ConnectError.from(error);
        outcomes.push({ startedAt, endedAt: performance.now(), code, message: rawMessage });
        // A refused call: the server is going away; ask again only while it is still there.
        if (code === Code.Unavailable) await new Promise((resolve) => setTimeout(resolve, 10));
      }
    }
  };
  const load = Promise.all(Array.from({ length: loops }, (_, index) => loop(index)));

  await waitUntil(
    "the load is under way",
    () => outcomes.filter((outcome) => outcome.code === "OK").length >= 2 * loops,
    30_000,
  );
  const signalledAt = performance.now();
  const exitCode = await userOrders.stop("SIGTERM");
  await load;
  const inFlight = outcomes.filter((outcome) => outcome.startedAt < signalledAt && outcome.endedAt > signalledAt);
  return { exitCode, outcomes, inFlight, exitedAt };
}

const codes = (list: CallOutcome[]) =>
  [...new Set(list.map((outcome) => (outcome.code === "OK" ? "OK" : Code[outcome.code])))].sort();

describe("SIGTERM under load", () => {
  it("answers every call in flight before user-orders exits 0", async () => {
    const customer = await slowViewsOf();
    const { exitCode, outcomes, inFlight, exitedAt } = await terminateUnderLoad(
      mesh.processes.get("user-orders")!,
      customer,
    );

    expect(exitCode).toBe(0);
    // Every loop had a call waiting on products when the signal came.
    expect(inFlight.length).toBeGreaterThanOrEqual(loops / 2);
    // The grace period is far longer than a call: all of them finish.
    expect(codes(inFlight)).toEqual(["OK"]);
    // Calls made after the signal are answered or refused, never left to hang or cut off.
    expect(outcomes.filter((outcome) => outcome.code !== "OK" && outcome.code !== Code.Unavailable)).toEqual([]);
    // And every call in flight ended before the process was gone.
    expect(exitedAt).toBeDefined();
    expect(inFlight.filter((outcome) => outcome.endedAt > exitedAt!)).toEqual([]);
  }, 90_000);

  it("answers UNAVAILABLE, not INTERNAL, for the calls still running when the grace period ends", async () => {
    const customer = await slowViewsOf();
    // The first test's user-orders, if it failed before stopping it: the mesh keeps one process per name.
    const previous = mesh.processes.get("user-orders");
    if (previous?.child.exitCode === null && previous.child.signalCode === null) await previous.stop();
    // Far shorter than a view: the calls in flight are still running when it is over.
    const userOrders = await mesh.startService("user-orders", { SHUTDOWN_GRACE: "1ms" });
    const { exitCode, outcomes, inFlight, exitedAt } = await terminateUnderLoad(userOrders, customer);

    expect(exitCode).toBe(0);
    expect(inFlight.length).toBeGreaterThanOrEqual(loops / 2);
    expect(codes(inFlight).filter((code) => code !== "OK" && code !== "Unavailable")).toEqual([]);
    const cutOff = inFlight.filter((outcome) => outcome.code === Code.Unavailable);
    expect(cutOff.length).toBeGreaterThan(0);
    for (const outcome of cutOff) expect(outcome.message).toMatch(/shutting down/);
    expect(outcomes.filter((outcome) => outcome.code !== "OK" && outcome.code !== Code.Unavailable)).toEqual([]);
    expect(inFlight.filter((outcome) => outcome.endedAt > exitedAt!)).toEqual([]);
  }, 90_000);
});
