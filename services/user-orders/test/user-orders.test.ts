import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import { durationMs } from "@bufbuild/protobuf/wkt";
import { Code, type Client } from "@connectrpc/connect";
import type { ServiceProcess } from "@shopmesh/cli";
import type { Product } from "@shopmesh/sdk/products/v1";
import { Dependency, Fallback, type UserOrdersService } from "@shopmesh/sdk/userorders/v1";
import { failure } from "../../../test/support/failure.js";
import { adminToken, signUpCustomer, TestMesh } from "../../../test/support/mesh.js";
import { freePort } from "../../../test/support/free-port.js";

const breakerFailures = 3;
// Long enough that the breaker is still open for the call after the one that opened it on a busy machine.
const breakerCooldownMs = 3000;
const productsTimeoutMs = 1000;

let mesh: TestMesh;
let productsPort: number;
let products: ServiceProcess;
let userOrders: ServiceProcess;
let catalog: Product[];
let alice: { userId: string; token: string };
let bob: { userId: string; token: string };
let admin: string;

function startProducts(): Promise<ServiceProcess> {
  return mesh.startExtra("products", { PORT: String(productsPort) });
}

function client(token?: string): Client<typeof UserOrdersService> {
  return mesh.clientAt("user-orders", userOrders.address, token);
}

beforeAll(async () => {
  mesh = await TestMesh.start(["users", "products", "orders"]);
  productsPort = await freePort();
  products = await startProducts();
  // Users and orders come from the mesh; products is the one this test controls.
  userOrders = await mesh.startExtra("user-orders", {
    PRODUCTS_TARGET: products.address,
    PRODUCTS_TIMEOUT: `${productsTimeoutMs}ms`,
    BREAKER_FAILURES: String(breakerFailures),
    BREAKER_COOLDOWN: `${breakerCooldownMs}ms`,
  });
  admin = await adminToken(mesh);
  const catalogAdmin = mesh.client("products", admin);
  catalog = [];
  for (const [name, minorUnits] of [
    ["Tea", 450n],
    ["Mug", 1200n],
    ["Spoon", 199n],
  ] as const) {
    catalog.push(
      (await catalogAdmin.createProduct({ name, description: `A ${name}`, price: { currencyCode: "EUR", minorUnits } }))
        .product!,
    );
  }
  alice = await signUpCustomer(mesh, "alice");
  bob = await signUpCustomer(mesh, "bob");
  const orders = mesh.client("orders", alice.token);
  await orders.createOrder({
    requestId: "a-1",
    items: [
      { productId: catalog[0]!.id, quantity: 2 },
      { productId: catalog[1]!.id, quantity: 1 },
    ],
  });
  await orders.createOrder({
    requestId: "a-2",
    items: [
      { productId: catalog[1]!.id, quantity: 3 },
      { productId: catalog[2]!.id, quantity: 1 },
    ],
  });
});

afterAll(() => mesh?.stop());

describe("user-orders with every dependency up", () => {
  it("serves the full view with a timing for each dependency", async () => {
    const view = await client(alice.token).getUserOrders({ userId: alice.userId });
    expect(view.profile).toMatchObject({ userId: alice.userId, displayName: "alice" });
    expect(view.orders).toHaveLength(2);
    const [newest, oldest] = view.orders;
    expect(newest!.lines.map((l) => [l.product?.name, l.quantity, l.unitPrice?.minorUnits])).toEqual([
      ["Mug", 3, 1200n],
      ["Spoon", 1, 199n],
    ]);
    expect(oldest!.total).toMatchObject({ currencyCode: "EUR", minorUnits: 2100n });
    expect(view.degradations).toEqual([]);
    expect(view.staleOrders).toBeUndefined();
    expect(view.timings.map((t) => [t.dependency, t.code, t.attempts])).toEqual([
      [Dependency.USERS, "OK", 1],
      [Dependency.ORDERS, "OK", 1],
      [Dependency.PRODUCTS, "OK", 1],
    ]);
    expect(durationMs(view.timings[2]!.timeout!)).toBeLessThanOrEqual(productsTimeoutMs);
  });

  it("keeps a customer to its own view (PERMISSION_DENIED) and lets an admin read it", async () => {
    expect((await failure(client(bob.token).getUserOrders({ userId: alice.userId }))).code).toBe(Code.PermissionDenied);
    const view = await client(admin).getUserOrders({ userId: alice.userId });
    expect(view.orders).toHaveLength(2);
    expect(view.degradations).toEqual([]);
  });

  it("needs a token (UNAUTHENTICATED) and a valid user id (INVALID_ARGUMENT)", async () => {
    expect((await failure(client().getUserOrders({ userId: alice.userId }))).code).toBe(Code.Unauthenticated);
    const bad = await failure(client(alice.token).getUserOrders({ userId: "nope" }));
    expect([bad.code, bad.rawMessage.split(":")[0]]).toEqual([Code.InvalidArgument, "user_id"]);
  });

  it("answers NOT_FOUND for a user that does not exist", async () => {
    const error = await failure(client(admin).getUserOrders({ userId: "01900000-0000-7000-8000-00000000abcd" }));
    expect(error.code).toBe(Code.NotFound);
  });
});

describe("user-orders when products goes down", () => {
  it("degrades, then fails fast with the breaker open, and heals after products is back", async () => {
    const view = client(alice.token);
    await products.stop("SIGKILL");

    for (let i = 0; i < breakerFailures; i++) {
      const degraded = await view.getUserOrders({ userId: alice.userId });
      expect(degraded.degradations).toMatchObject([
        { dependency: Dependency.PRODUCTS, code: "UNAVAILABLE", fallback: Fallback.NO_PRODUCT_DETAILS },
      ]);
      expect(degraded.profile?.userId).toBe(alice.userId);
      expect(
        degraded.orders[0]!.lines.map((l) => [l.productId, l.quantity, l.unitPrice?.minorUnits, l.product]),
      ).toEqual([
        [catalog[1]!.id, 3, 1200n, undefined],
        [catalog[2]!.id, 1, 199n, undefined],
      ]);
    }

    // The breaker answers for products: no request is sent (attempts: 0).
    let header = new Headers();
    const fast = await view.getUserOrders({ userId: alice.userId }, { onHeader: (h) => (header = h) });
    expect(fast.degradations).toMatchObject([{ dependency: Dependency.PRODUCTS, code: "UNAVAILABLE" }]);
    expect(fast.degradations[0]!.message).toMatch(/circuit breaker for products is open/);
    expect(fast.timings.find((t) => t.dependency === Dependency.PRODUCTS)).toMatchObject({
      attempts: 0,
      code: "UNAVAILABLE",
    });
    expect(header.get("x-breaker-products")).toBe("open");
    // Log lines come through a pipe and may trail the answer a little.
    const logged = (state: string) =>
      userOrders.logs.some((line) => line.dependency === "products" && line.state === state);
    await vi.waitFor(() => expect(logged("open")).toBe(true));

    products = await startProducts();
    await vi.waitFor(
      async () => {
        const healed = await view.getUserOrders({ userId: alice.userId });
        expect(healed.degradations).toEqual([]);
        expect(healed.orders[0]!.lines[0]!.product?.name).toBe("Mug");
      },
      { timeout: 20_000, interval: 250 },
    );
    await vi.waitFor(() => expect(logged("closed")).toBe(true));
  });
});
