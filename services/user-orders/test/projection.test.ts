// The EVENTUAL side of user-orders over real processes: the projection fed by
// the users, products and orders event streams, compared with the sources'
// own databases.
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Code } from "@connectrpc/connect";
import type { Product } from "@shopmesh/sdk/products/v1";
import { Consistency, Dependency, Fallback } from "@shopmesh/sdk/userorders/v1";
import { failure } from "../../../test/support/failure.js";
import { adminToken, signUpCustomer, TestMesh } from "../../../test/support/mesh.js";
import { natsForTests, natsServer, uniquePrefix, type TestNats } from "../../../test/support/nats-server.js";
import {
  projectionAndSources,
  projectionPositions,
  sourceHeads,
  waitCaughtUp,
  waitUntil,
} from "../../../test/support/projection-check.js";

const eventual = { consistency: Consistency.EVENTUAL } as const;

// The same consumer tests for both event sources: each service's own
// StreamEvents (the default) and NATS JetStream, with the producers relaying
// their outboxes to a real nats-server (skipped without one).
describe("the projection fed through grpc", () => projectionTests("grpc"));
describe.skipIf(natsServer().missing)("the projection fed through nats", () => projectionTests("nats"));

function projectionTests(source: "grpc" | "nats"): void {
  let mesh: TestMesh;
  let admin: string;
  let catalog: Product[];
  let projectionPath: string;
  let nats: TestNats | undefined;

  beforeAll(async () => {
    let natsEnv: Record<string, string> = {};
    if (source === "nats") {
      nats = await natsForTests();
      natsEnv = { NATS_URL: nats.url, EVENTS_NATS_PREFIX: uniquePrefix("projection") };
    }
    const producer = source === "nats" ? { ...natsEnv, EVENTS_RELAY: "nats" } : {};
    mesh = await TestMesh.start(["users", "products", "orders", "user-orders"], {
      users: producer,
      products: { ...producer, FAULT_INJECTION: "on" },
      orders: producer,
      "user-orders": {
        EVENTS_RECONNECT_MAX: "300ms",
        ...(source === "nats" ? { ...natsEnv, EVENTS_SOURCE: "nats" } : {}),
      },
    });
    projectionPath = join(mesh.dataDir, "user-orders.sqlite");
    admin = await adminToken(mesh);
    const products = mesh.client("products", admin);
    catalog = [];
    for (const [name, minorUnits] of [
      ["Tea", 450n],
      ["Mug", 1200n],
      ["Spoon", 199n],
    ] as const) {
      const { product } = await products.createProduct({
        name,
        description: `A ${name.toLowerCase()}`,
        price: { currencyCode: "EUR", minorUnits },
      });
      catalog.push(product!);
    }
  }, 60_000);

  afterAll(async () => {
    await mesh?.stop();
    await nats?.stop();
  });

  async function placeOrder(token: string, items: [Product, number][]): Promise<string> {
    const { order } = await mesh.client("orders", token).createOrder({
      requestId: `r-${Math.random().toString(36).slice(2)}`,
      items: items.map(([product, quantity]) => ({ productId: product.id, quantity })),
    });
    return order!.id;
  }

  describe("the projection", () => {
    it("shows a new user, order and product change in an EVENTUAL view, with no downstream call", async () => {
      const alice = await signUpCustomer(mesh, "alice");
      const orderId = await placeOrder(alice.token, [
        [catalog[0]!, 2],
        [catalog[1]!, 1],
      ]);
      const view = mesh.client("user-orders", alice.token);
      await waitUntil(
        "the order is projected",
        async () => (await view.getUserOrders({ userId: alice.userId, ...eventual })).orders.length === 1,
      );
      const answer = await view.getUserOrders({ userId: alice.userId, ...eventual });
      expect(answer.consistency).toBe(Consistency.EVENTUAL);
      expect(answer.profile?.email).toBe(alice.email);
      expect(answer.orders[0]!.orderId).toBe(orderId);
      expect(
        answer.orders[0]!.lines.map((line) => [line.product?.name, line.quantity, line.unitPrice?.minorUnits]),
      ).toEqual([
        ["Tea", 2, 450n],
        ["Mug", 1, 1200n],
      ]);
      expect(answer.orders[0]!.total?.minorUnits).toBe(2100n);
      expect(answer.timings).toEqual([]);
      expect(answer.degradations).toEqual([]);
      expect(answer.streamLags.map((lag) => lag.source).sort()).toEqual(
        [Dependency.USERS, Dependency.ORDERS, Dependency.PRODUCTS].sort(),
      );
      for (const lag of answer.streamLags) {
        expect(lag.connected).toBe(true);
        expect(lag.appliedSequence).toBeGreaterThan(0n);
        expect(lag.lastContactAge).toBeDefined();
      }

      // A price change reaches the view as the product's current price; the line keeps the price paid.
      await mesh
        .client("products", admin)
        .updateProduct({ productId: catalog[0]!.id, price: { currencyCode: "EUR", minorUnits: 500n } });
      await waitUntil("the price change is projected", async () => {
        const lines = (await view.getUserOrders({ userId: alice.userId, ...eventual })).orders[0]!.lines;
        return lines[0]!.product?.currentPrice?.minorUnits === 500n;
      });
      const after = await view.getUserOrders({ userId: alice.userId, ...eventual });
      expect(after.orders[0]!.lines[0]!.unitPrice?.minorUnits).toBe(450n);

      // STRONG is the default and says so.
      const strong = await view.getUserOrders({ userId: alice.userId });
      expect(strong.consistency).toBe(Consistency.STRONG);
      expect(strong.streamLags).toEqual([]);
    });

    it("applies the same rules to EVENTUAL views: own view only, NOT_FOUND once caught up, pages of the right size", async () => {
      const bob = await signUpCustomer(mesh, "bob");
      const carol = await signUpCustomer(mesh, "carol");
      for (let i = 0; i < 5; i++) await placeOrder(bob.token, [[catalog[2]!, i + 1]]);
      await waitCaughtUp(mesh, projectionPath);
      const view = mesh.client("user-orders", bob.token);
      expect((await failure(view.getUserOrders({ userId: carol.userId, ...eventual }))).code).toBe(
        Code.PermissionDenied,
      );
      const missing = "0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b";
      expect(
        (await failure(mesh.client("user-orders", admin).getUserOrders({ userId: missing, ...eventual }))).code,
      ).toBe(Code.NotFound);
      expect(
        (await failure(view.getUserOrders({ userId: bob.userId, consistency: 7 as Consistency }))).rawMessage,
      ).toContain("consistency");

      const first = await view.getUserOrders({ userId: bob.userId, pageSize: 3, ...eventual });
      expect(first.orders.map((o) => o.lines[0]!.quantity)).toEqual([5, 4, 3]);
      const second = await view.getUserOrders({
        userId: bob.userId,
        pageSize: 3,
        pageToken: first.nextPageToken,
        ...eventual,
      });
      expect(second.orders.map((o) => o.lines[0]!.quantity)).toEqual([2, 1]);
      expect(second.nextPageToken).toBe("");
      expect(
        (await failure(view.getUserOrders({ userId: bob.userId, pageToken: "not-a-token", ...eventual }))).code,
      ).toBe(Code.InvalidArgument);
    });

    it("answers EVENTUAL views in full while users and products are down, when STRONG degrades", async () => {
      const dave = await signUpCustomer(mesh, "dave");
      await placeOrder(dave.token, [[catalog[1]!, 3]]);
      await waitCaughtUp(mesh, projectionPath);
      const view = mesh.client("user-orders", dave.token);
      const restartUsers = await mesh.stopService("users");
      const restartProducts = await mesh.stopService("products");
      try {
        const full = await view.getUserOrders({ userId: dave.userId, ...eventual });
        expect(full.profile?.displayName).toBe("dave");
        expect(full.orders[0]!.lines[0]!.product?.name).toBe("Mug");
        expect(full.degradations).toEqual([]);
        const lags = new Map(full.streamLags.map((lag) => [lag.source, lag]));
        expect(lags.get(Dependency.ORDERS)?.connected).toBe(true);
        if (source === "grpc") {
          // Read from the services themselves, the users stream is gone with users...
          await waitUntil("the projection notices users is gone", async () => {
            const lag = (await view.getUserOrders({ userId: dave.userId, ...eventual })).streamLags.find(
              (l) => l.source === Dependency.USERS,
            );
            return lag?.connected === false;
          });
        } else {
          // ...while JetStream keeps serving what was relayed.
          expect(lags.get(Dependency.USERS)?.connected).toBe(true);
        }

        const strong = await view.getUserOrders({ userId: dave.userId }, { timeoutMs: 2000 });
        expect(strong.profile).toBeUndefined();
        expect(strong.degradations.map((d) => d.dependency).sort()).toEqual(
          [Dependency.USERS, Dependency.PRODUCTS].sort(),
        );
        expect(strong.orders[0]!.lines[0]!.product).toBeUndefined();
      } finally {
        await Promise.all([restartUsers(), restartProducts()]);
      }
      // Both streams reconnect on their own once the services are back.
      await waitUntil("the streams reconnect", async () => {
        const lags = (await view.getUserOrders({ userId: dave.userId, ...eventual })).streamLags;
        return lags.every((lag) => lag.connected);
      });
    });

    // Only the gRPC source reads StreamEvents, where the fault is set.
    it.runIf(source === "grpc")(
      "lists missing product details as a degradation while the products stream is held back",
      async () => {
        const erin = await signUpCustomer(mesh, "erin");
        await mesh
          .faults("products")
          .setFault({ fault: { method: "StreamEvents", errorRate: 1, errorCode: "UNAVAILABLE" } });
        try {
          // A fresh user-orders: its new products stream meets the fault; users and orders stream as usual.
          const restart = await mesh.stopService("user-orders");
          await restart();
          const { product } = await mesh.client("products", admin).createProduct({
            name: "Kettle",
            description: "",
            price: { currencyCode: "EUR", minorUnits: 3000n },
          });
          await placeOrder(erin.token, [[product!, 1]]);
          const view = mesh.client("user-orders", erin.token);
          await waitUntil(
            "the order is projected",
            async () => (await view.getUserOrders({ userId: erin.userId, ...eventual })).orders.length === 1,
          );
          const held = await view.getUserOrders({ userId: erin.userId, ...eventual });
          expect(held.orders[0]!.lines[0]!.product).toBeUndefined();
          expect(held.degradations).toHaveLength(1);
          expect(held.degradations[0]).toMatchObject({
            dependency: Dependency.PRODUCTS,
            code: "UNAVAILABLE",
            fallback: Fallback.NO_PRODUCT_DETAILS,
          });
          expect(held.streamLags.find((lag) => lag.source === Dependency.PRODUCTS)?.connected).toBe(false);
        } finally {
          await mesh.faults("products").clearFaults({});
        }
        const view = mesh.client("user-orders", erin.token);
        await waitUntil(
          "the details arrive",
          async () =>
            (await view.getUserOrders({ userId: erin.userId, ...eventual })).orders[0]?.lines[0]?.product !== undefined,
        );
        expect((await view.getUserOrders({ userId: erin.userId, ...eventual })).degradations).toEqual([]);
      },
    );

    it("loses and duplicates nothing when user-orders is killed and restarted during a burst of writes", async () => {
      const customers = await Promise.all([1, 2, 3, 4].map((i) => signUpCustomer(mesh, `burst-${i}`)));
      let written = 0;
      let stop = false;
      const writer = async (customer: { token: string }, index: number) => {
        while (!stop) {
          await placeOrder(customer.token, [
            [catalog[index % 3]!, 1 + (written % 5)],
            [catalog[(index + 1) % 3]!, 1],
          ]);
          written++;
          if (written % 10 === 0) {
            await mesh
              .client("products", admin)
              .updateProduct({ productId: catalog[index % 3]!.id, description: `burst ${written}` });
          }
        }
      };
      const writers = customers.map((customer, index) => writer(customer, index));
      try {
        await waitUntil("the burst is under way", () => written >= 40);
        const restart = await mesh.stopService("user-orders");
        const atKill = written;
        await waitUntil("writes continue while user-orders is down", () => written >= atKill + 40);
        await restart();
        await waitUntil("writes continue after the restart", () => written >= atKill + 80);
      } finally {
        stop = true;
        await Promise.all(writers);
      }
      await signUpCustomer(mesh, "after-burst");
      await waitCaughtUp(mesh, projectionPath);
      const { projection, sources } = projectionAndSources(mesh.dataDir, projectionPath);
      expect(projection.orders.length).toBeGreaterThanOrEqual(120);
      expect(projection).toEqual(sources);
      expect(projectionPositions(projectionPath)).toEqual(await sourceHeads(mesh));
    }, 60_000);

    it("catches up after falling far behind", async () => {
      const restart = await mesh.stopService("user-orders", "SIGTERM");
      const products = mesh.client("products", admin);
      const behind = 1500;
      for (let start = 0; start < behind; start += 50) {
        await Promise.all(
          Array.from({ length: 50 }, (_, i) =>
            products.createProduct({
              name: `Bulk ${start + i}`,
              description: "",
              price: { currencyCode: "EUR", minorUnits: BigInt(start + i) },
            }),
          ),
        );
      }
      const heads = await sourceHeads(mesh);
      expect(heads.products - projectionPositions(projectionPath).products).toBeGreaterThanOrEqual(behind);
      await restart();
      await waitCaughtUp(mesh, projectionPath);
      const { projection, sources } = projectionAndSources(mesh.dataDir, projectionPath);
      expect(projection.products).toHaveLength(sources.products.length);
      expect(projection).toEqual(sources);
    }, 60_000);
  });
}
