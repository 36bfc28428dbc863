// GetUserOrders against real service processes whose faults are injected at
// run time through their admin listeners, as `shopmesh chaos` does.
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { create, toBinary } from "@bufbuild/protobuf";
import { durationFromMs } from "@bufbuild/protobuf/wkt";
import { Code, type Client } from "@connectrpc/connect";
import { Dependency, Fallback, GetUserOrdersRequestSchema, type UserOrdersService } from "@shopmesh/sdk/userorders/v1";
import { failure } from "../../../test/support/failure.js";
import { adminToken, signUpCustomer, TestMesh, type ServiceName } from "../../../test/support/mesh.js";
import { rawUnaryCall } from "../../../test/support/raw-grpc-call.js";

const faulty: ServiceName[] = ["users", "products", "orders"];
let mesh: TestMesh;
let customer: { userId: string; token: string };
let view: Client<typeof UserOrdersService>;

beforeAll(async () => {
  const env = { FAULT_INJECTION: "on", LOG_LEVEL: "debug" };
  mesh = await TestMesh.start(["users", "products", "orders", "user-orders"], {
    users: env,
    products: env,
    orders: env,
    // Keep the breakers out of the way of these tests: they need many failures to open.
    "user-orders": {
      BREAKER_FAILURES: "50",
      USERS_TIMEOUT: "300ms",
      PRODUCTS_TIMEOUT: "300ms",
      ORDERS_TIMEOUT: "400ms",
    },
  });
  const admin = mesh.client("products", await adminToken(mesh));
  const ids: string[] = [];
  for (const name of ["Tea", "Mug", "Spoon"]) {
    ids.push((await admin.createProduct({ name, price: { currencyCode: "EUR", minorUnits: 500n } })).product!.id);
  }
  customer = await signUpCustomer(mesh, "viewer");
  const orders = mesh.client("orders", customer.token);
  for (let i = 0; i < 3; i++) {
    await orders.createOrder({
      requestId: `view-${i}`,
      items: [
        { productId: ids[i]!, quantity: 1 },
        { productId: ids[(i + 1) % 3]!, quantity: 2 },
      ],
    });
  }
  view = mesh.client("user-orders", customer.token);
});
afterEach(async () => {
  await Promise.all(faulty.map((service) => mesh.faults(service).clearFaults({})));
});
afterAll(() => mesh?.stop());

describe("GetUserOrders under injected faults", () => {
  it("answers the full view with no degradations when all is well", async () => {
    const response = await view.getUserOrders({ userId: customer.userId }, { timeoutMs: 2000 });
    expect(response.degradations).toEqual([]);
    expect(response.profile?.userId).toBe(customer.userId);
    expect(response.orders).toHaveLength(3);
    expect(response.orders.flatMap((o) => o.lines).every((line) => line.product?.name)).toBe(true);
  });

  it("returns before the caller's deadline when products hangs, and products saw no later deadline", async () => {
    await mesh.faults("products").setFault({ fault: { method: "BatchGetProducts", hang: true } });
    const callerTimeoutMs = 800;
    const started = performance.now();
    const response = await view.getUserOrders({ userId: customer.userId }, { timeoutMs: callerTimeoutMs });
    const elapsed = performance.now() - started;
    expect(elapsed).toBeLessThan(callerTimeoutMs);
    expect(response.degradations).toEqual([
      expect.objectContaining({
        dependency: Dependency.PRODUCTS,
        code: "DEADLINE_EXCEEDED",
        fallback: Fallback.NO_PRODUCT_DETAILS,
      }),
    ]);
    const lines = response.orders.flatMap((o) => o.lines);
    expect(lines.length).toBe(6);
    expect(lines.every((line) => line.product === undefined && line.unitPrice?.minorUnits === 500n)).toBe(true);
    // Products logs its end of the call when its own deadline passes, about when user-orders' does.
    const lastCall = () =>
      mesh.processes
        .get("products")!
        .logs.filter((entry) => entry.msg === "call" && String(entry.method).endsWith("/BatchGetProducts"))
        .at(-1);
    await expect.poll(() => lastCall()?.code, { timeout: 5_000 }).toBe("DEADLINE_EXCEEDED");
    const seen = lastCall();
    expect(Number(seen?.timeoutMs)).toBeGreaterThan(0);
    expect(Number(seen?.timeoutMs)).toBeLessThanOrEqual(callerTimeoutMs);
  });

  it("answers without a profile when users fails, and lists the degradation", async () => {
    await mesh.faults("users").setFault({ fault: { method: "GetUser", errorRate: 1, errorCode: "UNAVAILABLE" } });
    const response = await view.getUserOrders({ userId: customer.userId }, { timeoutMs: 2000 });
    expect(response.profile).toBeUndefined();
    expect(response.orders).toHaveLength(3);
    expect(response.degradations).toEqual([
      expect.objectContaining({ dependency: Dependency.USERS, code: "UNAVAILABLE", fallback: Fallback.NO_PROFILE }),
    ]);
    const users = response.timings.find((t) => t.dependency === Dependency.USERS)!;
    expect(users.attempts).toBe(3);
  });

  it("serves the kept copy of orders, marked stale with its age, when orders fails; UNAVAILABLE without one", async () => {
    const fresh = await view.getUserOrders({ userId: customer.userId, pageSize: 2 });
    expect(fresh.staleOrders).toBeUndefined();
    await mesh.faults("orders").setFault({ fault: { method: "ListOrders", errorRate: 1, errorCode: "INTERNAL" } });
    const stale = await view.getUserOrders({ userId: customer.userId, pageSize: 2 });
    expect(stale.orders.map((o) => o.orderId)).toEqual(fresh.orders.map((o) => o.orderId));
    expect(stale.staleOrders?.fetchTime).toBeDefined();
    expect(stale.staleOrders?.age).toBeDefined();
    expect(stale.degradations).toContainEqual(
      expect.objectContaining({ dependency: Dependency.ORDERS, code: "INTERNAL", fallback: Fallback.STALE_ORDERS }),
    );
    // No copy of this page was ever kept.
    const error = await failure(view.getUserOrders({ userId: customer.userId, pageSize: 3 }));
    expect(error.code).toBe(Code.Unavailable);
    expect(error.rawMessage).toContain("orders");
  });

  it("recovers most calls by retrying when users fails half the time, always within the budget", async () => {
    await mesh.faults("users").setFault({ fault: { method: "GetUser", errorRate: 0.5, errorCode: "UNAVAILABLE" } });
    const calls = 60;
    const budgetMs = 1500;
    let withProfile = 0;
    let retried = 0;
    for (let i = 0; i < calls; i++) {
      const started = performance.now();
      const response = await view.getUserOrders({ userId: customer.userId }, { timeoutMs: budgetMs });
      expect(performance.now() - started).toBeLessThan(budgetMs);
      if (response.profile) withProfile++;
      if (response.timings.find((t) => t.dependency === Dependency.USERS)!.attempts > 1) retried++;
    }
    // With two retries a call loses its profile only when all three attempts
    // fail: 0.5^3 = 12.5 %. Over 60 calls the share with a profile is
    // 87.5 % ± 4.3 % (one standard deviation); without retries it would be 50 %.
    expect(withProfile / calls).toBeGreaterThan(0.7);
    expect(retried).toBeGreaterThan(10);
  });

  it("shows an injected latency in the dependency's timing", async () => {
    await mesh.faults("products").setFault({ fault: { method: "*", latency: durationFromMs(150) } });
    const response = await view.getUserOrders({ userId: customer.userId }, { timeoutMs: 2000 });
    expect(response.degradations).toEqual([]);
    const products = response.timings.find((t) => t.dependency === Dependency.PRODUCTS)!;
    const ms = Number(products.duration!.seconds) * 1000 + products.duration!.nanos / 1e6;
    expect(ms).toBeGreaterThanOrEqual(145);
  });
});

describe("GetUserOrders with a deadline too short to call anyone", () => {
  // A gRPC client gives up at its own deadline and reports DEADLINE_EXCEEDED
  // whatever the server says, so these calls come from a bare HTTP/2 client
  // that waits for the server's own answer.
  it.each([0.5, 1, 5])("answers DEADLINE_EXCEEDED, not UNAVAILABLE, to a %s ms deadline", async (timeoutMs) => {
    // A page size no other test asks for, so that no kept copy of the page can answer instead.
    const request = toBinary(
      GetUserOrdersRequestSchema,
      create(GetUserOrdersRequestSchema, { userId: customer.userId, pageSize: 7 }),
    );
    const status = await rawUnaryCall(
      mesh.address("user-orders"),
      "/shopmesh.userorders.v1.UserOrdersService/GetUserOrders",
      request,
      {
        ca: mesh.clientTls(undefined)?.ca,
        timeoutMs,
        headers: { authorization: `Bearer ${customer.token}` },
      },
    );
    expect(status.code, status.message).toBe(Code.DeadlineExceeded);
  });
});
