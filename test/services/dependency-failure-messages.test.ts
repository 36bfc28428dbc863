// What callers are told when a dependency fails, over real processes: which
// dependency and the status, never where it lives. grpc-js writes the
// dependency's address into its own messages (`connect ECONNREFUSED
// 127.0.0.1:…`, `remote_addr=…`); those go to the calling service's log, and
// must not reach a caller through orders' CreateOrder errors or user-orders'
// degradations and errors.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Code } from "@connectrpc/connect";
import { Dependency } from "@shopmesh/sdk/userorders/v1";
import { failure } from "../support/failure.js";
import { adminToken, signUpCustomer, TestMesh } from "../support/mesh.js";

/** Anything that tells where a service lives. */
const whereItLives = /\d{1,3}(?:\.\d{1,3}){3}:\d+|\[[0-9a-f:]*\]:\d+|localhost:\d+|remote_addr|ECONNREFUSED/i;

let mesh: TestMesh;
let productsAddress: string;
let ordersAddress: string;
let customer: { userId: string; token: string };
let productId: string;
let requests = 0;

beforeAll(async () => {
  mesh = await TestMesh.start(["users", "products", "orders", "user-orders"], {
    products: { FAULT_INJECTION: "on" },
    orders: { PRODUCTS_TIMEOUT: "300ms" },
    "user-orders": { BREAKER_FAILURES: "50", PRODUCTS_TIMEOUT: "300ms" },
  });
  productsAddress = mesh.address("products");
  ordersAddress = mesh.address("orders");
  const admin = mesh.client("products", await adminToken(mesh));
  productId = (await admin.createProduct({ name: "Tea", price: { currencyCode: "EUR", minorUnits: 450n } })).product!
    .id;
  customer = await signUpCustomer(mesh, "asker");
  await mesh.client("orders", customer.token).createOrder({ requestId: "first", items: [{ productId, quantity: 1 }] });
});

afterAll(() => mesh?.stop());

async function createOrderFailure() {
  const orders = mesh.client("orders", customer.token);
  return failure(
    orders.createOrder({ requestId: `try-${++requests}`, items: [{ productId, quantity: 1 }] }, { timeoutMs: 5000 }),
  );
}

async function strongView(pageSize?: number) {
  return mesh
    .client("user-orders", customer.token)
    .getUserOrders({ userId: customer.userId, pageSize }, { timeoutMs: 5000 });
}

/** The log lines of `service` about a failed call to `dependency`. */
function failedCallLogs(service: "orders" | "user-orders", dependency: string) {
  return mesh.processes
    .get(service)!
    .logs.filter((line) => line.msg === `call to ${dependency} failed` && line.dependency === dependency);
}

describe("a dependency's failure, told to callers", () => {
  it("when products hangs: no remote_addr in CreateOrder's error or the view's degradation; the log has it", async () => {
    await mesh.faults("products").setFault({ fault: { method: "BatchGetProducts", hang: true } });
    try {
      const refused = await createOrderFailure();
      expect(refused.code).toBe(Code.Unavailable);
      expect(refused.rawMessage).toContain("products did not answer in time (DEADLINE_EXCEEDED)");
      expect(refused.rawMessage).not.toMatch(whereItLives);

      const view = await strongView();
      expect(view.degradations).toMatchObject([
        {
          dependency: Dependency.PRODUCTS,
          code: "DEADLINE_EXCEEDED",
          message: "products did not answer in time (DEADLINE_EXCEEDED)",
        },
      ]);
    } finally {
      await mesh.faults("products").clearFaults({});
    }
    for (const service of ["orders", "user-orders"] as const) {
      await expect
        .poll(() => failedCallLogs(service, "products").map((line) => [line.target, line.code]))
        .toContainEqual([productsAddress, "DEADLINE_EXCEEDED"]);
    }
    // The words of whoever ended the call go to the log as they are. Usually that is orders' grpc-js
    // ("Deadline exceeded after ...", naming the peer when the call had a stream by then); on a loaded
    // machine products' own copy of the deadline can fire first, and its status says so: the
    // chassis's "the deadline passed", or grpc-js's server timer's bare "Deadline exceeded".
    expect(failedCallLogs("orders", "products").map((line) => String(line.detail))).toContainEqual(
      expect.stringMatching(/^(?:Deadline exceeded(?:$| after )|the deadline passed$)/),
    );
  });

  it("when products is down: no address or ECONNREFUSED in CreateOrder's error or the view's degradation; the log has them", async () => {
    await mesh.stopService("products");
    const refused = await createOrderFailure();
    expect(refused.code).toBe(Code.Unavailable);
    expect(refused.rawMessage).toContain("products is unavailable (UNAVAILABLE)");
    expect(refused.rawMessage).not.toMatch(whereItLives);

    const view = await strongView();
    expect(view.degradations).toMatchObject([
      { dependency: Dependency.PRODUCTS, code: "UNAVAILABLE", message: "products is unavailable (UNAVAILABLE)" },
    ]);
    for (const service of ["orders", "user-orders"] as const) {
      await expect
        .poll(() =>
          failedCallLogs(service, "products").some(
            (line) =>
              line.target === productsAddress && String(line.detail).includes(`ECONNREFUSED ${productsAddress}`),
          ),
        )
        .toBe(true);
    }
  });

  it("when orders is down too: GetUserOrders' error names orders and its status, not its address", async () => {
    await mesh.stopService("orders");
    // A page size not asked before, so that no kept copy answers instead.
    const error = await failure(strongView(3));
    expect(error.code).toBe(Code.Unavailable);
    expect(error.rawMessage).toMatch(/^orders failed with UNAVAILABLE \(orders is unavailable \(UNAVAILABLE\)\)/);
    expect(error.rawMessage).not.toMatch(whereItLives);
    await expect
      .poll(() =>
        failedCallLogs("user-orders", "orders").some(
          (line) => line.target === ordersAddress && String(line.detail).includes("ECONNREFUSED"),
        ),
      )
      .toBe(true);
  });
});
