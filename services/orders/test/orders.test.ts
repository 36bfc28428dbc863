import { join } from "node:path";
import Database from "better-sqlite3";
import { create, toBinary } from "@bufbuild/protobuf";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Code, ConnectError, type Client } from "@connectrpc/connect";
import { int64Max, type RunningServer } from "@shopmesh/chassis";
import { CreateOrderRequestSchema, type OrdersService } from "@shopmesh/sdk/orders/v1";
import type { Product } from "@shopmesh/sdk/products/v1";
import { startFakeProducts } from "../../../test/support/fake-products.js";
import { failure } from "../../../test/support/failure.js";
import { rawUnaryCall } from "../../../test/support/raw-grpc-call.js";
import { adminToken, signUpCustomer, TestMesh } from "../../../test/support/mesh.js";

let mesh: TestMesh;
let catalog: Product[];
beforeAll(async () => {
  mesh = await TestMesh.start(["users", "products", "orders"]);
  const admin = mesh.client("products", await adminToken(mesh));
  catalog = [];
  for (const [name, minorUnits] of [
    ["Tea", 450n],
    ["Mug", 1200n],
    ["Spoon", 199n],
  ] as const) {
    catalog.push((await admin.createProduct({ name, price: { currencyCode: "EUR", minorUnits } })).product!);
  }
});
afterAll(() => mesh?.stop());

const unknownProduct = "01900000-0000-7000-8000-00000000abcd";
let requestCounter = 0;
const requestId = () => `req-${++requestCounter}`;

async function customer(): Promise<{ userId: string; orders: Client<typeof OrdersService> }> {
  const c = await signUpCustomer(mesh);
  return { userId: c.userId, orders: mesh.client("orders", c.token) };
}

describe("CreateOrder", () => {
  it("places an order for the caller, copying each unit price and totalling it", async () => {
    const { userId, orders } = await customer();
    const [tea, mug] = catalog;
    const { order } = await orders.createOrder({
      requestId: requestId(),
      items: [
        { productId: tea!.id, quantity: 2 },
        { productId: mug!.id, quantity: 1 },
      ],
    });
    expect(order!.userId).toBe(userId);
    expect(order!.lines.map((l) => [l.productId, l.quantity, l.unitPrice!.minorUnits])).toEqual([
      [tea!.id, 2, 450n],
      [mug!.id, 1, 1200n],
    ]);
    expect(order!.total).toMatchObject({ currencyCode: "EUR", minorUnits: 2100n });
    expect((await orders.getOrder({ orderId: order!.id })).order).toEqual(order);
  });

  it("returns the first order for a repeated request id instead of placing a second", async () => {
    const { userId, orders } = await customer();
    const request = { requestId: requestId(), items: [{ productId: catalog[0]!.id, quantity: 1 }] };
    const [first, second] = await Promise.all([orders.createOrder(request), orders.createOrder(request)]);
    const third = await orders.createOrder(request);
    expect(second.order!.id).toBe(first.order!.id);
    expect(third.order!.id).toBe(first.order!.id);
    expect((await orders.listOrders({ userId })).orders).toHaveLength(1);
  });

  it("names an unknown product: INVALID_ARGUMENT, nothing stored", async () => {
    const { userId, orders } = await customer();
    const error = await failure(
      orders.createOrder({
        requestId: requestId(),
        items: [
          { productId: catalog[0]!.id, quantity: 1 },
          { productId: unknownProduct, quantity: 1 },
        ],
      }),
    );
    expect(error.code).toBe(Code.InvalidArgument);
    expect(error.rawMessage).toContain("items[1].product_id");
    expect(error.rawMessage).toContain(unknownProduct);
    expect((await orders.listOrders({ userId })).orders).toHaveLength(0);
  });

  it.each([
    ["request_id", { requestId: "", items: [{ productId: unknownProduct, quantity: 1 }] }],
    ["request_id", { requestId: "x".repeat(101), items: [{ productId: unknownProduct, quantity: 1 }] }],
    ["request_id", { requestId: "  padded  ", items: [{ productId: unknownProduct, quantity: 1 }] }],
    ["request_id", { requestId: "r\n", items: [{ productId: unknownProduct, quantity: 1 }] }],
    ["request_id", { requestId: " ", items: [{ productId: unknownProduct, quantity: 1 }] }],
    ["request_id", { requestId: "r\u0000x", items: [{ productId: unknownProduct, quantity: 1 }] }],
    ["request_id", { requestId: "r\u200bx", items: [{ productId: unknownProduct, quantity: 1 }] }],
    ["items", { requestId: "r", items: [] }],
    [
      "items",
      { requestId: "r", items: Array.from({ length: 101 }, () => ({ productId: unknownProduct, quantity: 1 })) },
    ],
    ["items[0].product_id", { requestId: "r", items: [{ productId: "", quantity: 1 }] }],
    ["items[0].quantity", { requestId: "r", items: [{ productId: unknownProduct, quantity: 0 }] }],
    ["items[0].quantity", { requestId: "r", items: [{ productId: unknownProduct, quantity: 1001 }] }],
    [
      "items[1].product_id",
      {
        requestId: "r",
        items: [
          { productId: unknownProduct, quantity: 1 },
          { productId: unknownProduct, quantity: 2 },
        ],
      },
    ],
  ])("names the bad field %s: INVALID_ARGUMENT", async (field, request) => {
    const { orders } = await customer();
    const error = await failure(orders.createOrder(request));
    expect(error.code).toBe(Code.InvalidArgument);
    expect(error.rawMessage.startsWith(`${field}:`)).toBe(true);
  });

  it("needs a token: UNAUTHENTICATED", async () => {
    const error = await failure(
      mesh.client("orders").createOrder({ requestId: "r", items: [{ productId: catalog[0]!.id, quantity: 1 }] }),
    );
    expect(error.code).toBe(Code.Unauthenticated);
  });
});

/** A products server in this process that prices from a fixed catalog, on a real loopback port. */
function fixedCatalog(prices: Record<string, bigint>): Promise<RunningServer> {
  const known = (id: string) => Object.hasOwn(prices, id);
  return startFakeProducts(
    "fixed-products",
    ({ productIds }) => ({
      products: productIds
        .filter(known)
        .map((id) => ({ id, name: id, price: { currencyCode: "EUR", minorUnits: prices[id]! } })),
      missingProductIds: productIds.filter((id) => !known(id)),
    }),
    mesh.certificates?.identities.products,
  );
}

/** Every order the orders service has recorded an OrderPlaced for, from its event stream up to the head it announced. */
async function placedEvents(): Promise<{ id: string; total: bigint | undefined }[]> {
  const events = mesh.client("orders", undefined, "user-orders");
  const controller = new AbortController();
  const placed: { id: string; total: bigint | undefined }[] = [];
  try {
    let head: bigint | undefined;
    for await (const message of events.streamEvents({}, { signal: controller.signal, timeoutMs: 10_000 })) {
      head ??= message.headSequence;
      const kind = message.event?.kind;
      if (kind?.case === "orderPlaced")
        placed.push({ id: kind.value.order!.id, total: kind.value.order!.total?.minorUnits });
      if ((message.event?.sequence ?? 0n) >= head) break;
    }
  } finally {
    controller.abort();
  }
  return placed;
}

describe("CreateOrder adds money exactly", () => {
  it("totals 100 products at 999,999,999,999 minor units, 999 of each, to exactly 99,899,999,999,900,100", async () => {
    const admin = mesh.client("products", await adminToken(mesh));
    const dear: Product[] = [];
    for (let start = 0; start < 100; start += 20) {
      const batch = Array.from({ length: 20 }, (_, i) =>
        admin.createProduct({
          name: `Dear ${start + i}`,
          price: { currencyCode: "EUR", minorUnits: 999_999_999_999n },
        }),
      );
      dear.push(...(await Promise.all(batch)).map((created) => created.product!));
    }
    const { userId, orders } = await customer();
    const { order } = await orders.createOrder({
      requestId: requestId(),
      items: dear.map((p) => ({ productId: p.id, quantity: 999 })),
    });

    const exactSum = 100n * 999n * 999_999_999_999n;
    expect(exactSum).toBe(99_899_999_999_900_100n);
    expect(order!.lines.map((l) => [l.quantity, l.unitPrice?.minorUnits])).toEqual(
      dear.map(() => [999, 999_999_999_999n]),
    );
    expect(order!.lines.reduce((sum, l) => sum + BigInt(l.quantity) * l.unitPrice!.minorUnits, 0n)).toBe(exactSum);
    expect(order!.total).toMatchObject({ currencyCode: "EUR", minorUnits: exactSum });
    // Read back from SQLite, and as its event carries it.
    expect((await orders.getOrder({ orderId: order!.id })).order!.total?.minorUnits).toBe(exactSum);
    expect((await orders.listOrders({ userId })).orders[0]!.total?.minorUnits).toBe(exactSum);
    expect((await placedEvents()).find((placed) => placed.id === order!.id)?.total).toBe(exactSum);
  });

  it("keeps an amount of exactly the int64 maximum, and refuses a line or a total beyond it, naming the field", async () => {
    const dearest = "01900000-0000-7000-8000-00000000d001";
    const cheapest = "01900000-0000-7000-8000-00000000d002";
    const catalogServer = await fixedCatalog({ [dearest]: int64Max, [cheapest]: 1n });
    const own = await mesh.startExtra("orders", { PRODUCTS_TARGET: catalogServer.address });
    try {
      const c = await signUpCustomer(mesh);
      const orders = mesh.clientAt("orders", own.address, c.token);
      const { order } = await orders.createOrder({
        requestId: requestId(),
        items: [{ productId: dearest, quantity: 1 }],
      });
      expect(order!.total?.minorUnits).toBe(int64Max);
      // The mesh's own orders process reads the same SQLite file.
      const stored = (await mesh.client("orders", c.token).getOrder({ orderId: order!.id })).order!;
      expect([stored.total?.minorUnits, stored.lines[0]!.unitPrice?.minorUnits]).toEqual([int64Max, int64Max]);

      const line = await failure(
        orders.createOrder({ requestId: requestId(), items: [{ productId: dearest, quantity: 2 }] }),
      );
      expect([line.code, line.rawMessage.split(":")[0]]).toEqual([Code.InvalidArgument, "items[0].quantity"]);
      const total = await failure(
        orders.createOrder({
          requestId: requestId(),
          items: [
            { productId: cheapest, quantity: 1 },
            { productId: dearest, quantity: 1 },
          ],
        }),
      );
      expect([total.code, total.rawMessage.split(":")[0]]).toEqual([Code.InvalidArgument, "items"]);
      expect((await orders.listOrders({ userId: c.userId })).orders.map((o) => o.id)).toEqual([order!.id]);
    } finally {
      await own.stop("SIGKILL");
      await catalogServer.stop();
    }
  });
});

describe("CreateOrder with a request_id used before", () => {
  it("answers ALREADY_EXISTS naming request_id for a different request, and the first order for the same one", async () => {
    const { userId, orders } = await customer();
    const [tea, mug] = catalog;
    const id = requestId();
    const { order: first } = await orders.createOrder({ requestId: id, items: [{ productId: tea!.id, quantity: 2 }] });
    for (const items of [
      [{ productId: mug!.id, quantity: 7 }],
      [{ productId: tea!.id, quantity: 3 }],
      [
        { productId: tea!.id, quantity: 2 },
        { productId: mug!.id, quantity: 1 },
      ],
    ]) {
      const error = await failure(orders.createOrder({ requestId: id, items }));
      expect(error.code).toBe(Code.AlreadyExists);
      expect(error.rawMessage.startsWith("request_id:")).toBe(true);
      expect(error.rawMessage).toContain(first!.id);
    }
    const retried = await orders.createOrder({ requestId: id, items: [{ productId: tea!.id, quantity: 2 }] });
    expect(retried.order).toEqual(first);
    expect((await orders.listOrders({ userId })).orders.map((o) => o.id)).toEqual([first!.id]);
    expect((await placedEvents()).filter((placed) => placed.id === first!.id)).toHaveLength(1);
  });

  it("lets exactly one of two different requests sent at once with one request_id through", async () => {
    const { userId, orders } = await customer();
    const id = requestId();
    const results = await Promise.allSettled([
      orders.createOrder({ requestId: id, items: [{ productId: catalog[0]!.id, quantity: 1 }] }),
      orders.createOrder({ requestId: id, items: [{ productId: catalog[1]!.id, quantity: 1 }] }),
    ]);
    const placed = results.flatMap((result) => (result.status === "fulfilled" ? [result.value.order!.id] : []));
    const refused = results.flatMap((result) =>
      result.status === "rejected" ? [ConnectError.from(result.reason).code] : [],
    );
    expect([placed.length, refused]).toEqual([1, [Code.AlreadyExists]]);
    expect((await orders.listOrders({ userId })).orders.map((o) => o.id)).toEqual(placed);
  });

  it("compares an order stored before fingerprints were kept by its lines", async () => {
    const { orders } = await customer();
    const [tea, mug] = catalog;
    const request = {
      requestId: requestId(),
      items: [
        { productId: mug!.id, quantity: 1 },
        { productId: tea!.id, quantity: 4 },
      ],
    };
    const { order } = await orders.createOrder(request);
    const sqlite = new Database(join(mesh.dataDir, "orders.sqlite"));
    try {
      expect(sqlite.prepare("UPDATE orders SET request_fingerprint = NULL WHERE id = ?").run(order!.id).changes).toBe(
        1,
      );
    } finally {
      sqlite.close();
    }
    expect((await orders.createOrder(request)).order).toEqual(order);
    const reordered = await failure(orders.createOrder({ ...request, items: [...request.items].reverse() }));
    expect([reordered.code, reordered.rawMessage.split(":")[0]]).toEqual([Code.AlreadyExists, "request_id"]);
  });
});

describe("GetOrder and ListOrders", () => {
  it("keep customers to their own orders (PERMISSION_DENIED) and let admins read all", async () => {
    const alice = await customer();
    const bob = await customer();
    const { order } = await alice.orders.createOrder({
      requestId: requestId(),
      items: [{ productId: catalog[1]!.id, quantity: 3 }],
    });
    expect((await failure(bob.orders.getOrder({ orderId: order!.id }))).code).toBe(Code.PermissionDenied);
    expect((await failure(bob.orders.listOrders({ userId: alice.userId }))).code).toBe(Code.PermissionDenied);
    const admin = mesh.client("orders", await adminToken(mesh));
    expect((await admin.getOrder({ orderId: order!.id })).order!.id).toBe(order!.id);
    expect((await admin.listOrders({ userId: alice.userId })).orders.map((o) => o.id)).toEqual([order!.id]);
  });

  it("answer NOT_FOUND for an unknown order and INVALID_ARGUMENT for malformed ids", async () => {
    const { orders } = await customer();
    expect((await failure(orders.getOrder({ orderId: unknownProduct }))).code).toBe(Code.NotFound);
    const badOrder = await failure(orders.getOrder({ orderId: "nope" }));
    expect([badOrder.code, badOrder.rawMessage.split(":")[0]]).toEqual([Code.InvalidArgument, "order_id"]);
    const badUser = await failure(orders.listOrders({ userId: "nope" }));
    expect([badUser.code, badUser.rawMessage.split(":")[0]]).toEqual([Code.InvalidArgument, "user_id"]);
    const badToken = await failure(orders.listOrders({ userId: unknownProduct, pageToken: "%%%" }));
    expect(badToken.code).toBe(Code.PermissionDenied);
  });

  it("lists newest first, in pages", async () => {
    const { userId, orders } = await customer();
    const placed: string[] = [];
    for (let i = 0; i < 5; i++) {
      placed.push(
        (await orders.createOrder({ requestId: requestId(), items: [{ productId: catalog[2]!.id, quantity: i + 1 }] }))
          .order!.id,
      );
    }
    const seen: string[] = [];
    let pageToken = "";
    do {
      const page = await orders.listOrders({ userId, pageSize: 2, pageToken });
      seen.push(...page.orders.map((o) => o.id));
      pageToken = page.nextPageToken;
    } while (pageToken);
    expect(seen).toEqual(placed.reverse());
    for (const pageToken of [
      "%%%",
      ...['{"before":"zzz"}', '{"before":""}'].map((json) => Buffer.from(json).toString("base64url")),
    ]) {
      const bad = await failure(orders.listOrders({ userId, pageToken }));
      expect([pageToken, bad.code, bad.rawMessage]).toEqual([
        pageToken,
        Code.InvalidArgument,
        "page_token: is not a token this service issued",
      ]);
    }
  });
});

describe("CreateOrder when products cannot answer", () => {
  /** A products server that never answers, on a real loopback port, and an orders process that calls it. */
  async function withHangingProducts(
    productsTimeout: string,
    body: (own: { address: string }, c: { userId: string; token: string }) => Promise<void>,
  ): Promise<void> {
    const hanging = await startFakeProducts(
      "hanging-products",
      (_, context) =>
        new Promise((_, reject) => context.signal.addEventListener("abort", () => reject(context.signal.reason))),
      mesh.certificates?.identities.products,
    );
    const own = await mesh.startExtra("orders", {
      PRODUCTS_TARGET: hanging.address,
      PRODUCTS_TIMEOUT: productsTimeout,
    });
    try {
      await body(own, await signUpCustomer(mesh));
    } finally {
      await own.stop("SIGKILL");
      await hanging.stop();
    }
  }

  it("answers UNAVAILABLE within its own deadline when products hangs, and stores nothing", async () => {
    await withHangingProducts("300ms", async (own, c) => {
      const orders = mesh.clientAt("orders", own.address, c.token);
      const started = performance.now();
      const error = await failure(
        orders.createOrder({ requestId: requestId(), items: [{ productId: catalog[0]!.id, quantity: 1 }] }),
      );
      const elapsed = performance.now() - started;
      expect(error.code).toBe(Code.Unavailable);
      expect(error.rawMessage).toContain("DEADLINE_EXCEEDED");
      expect(elapsed).toBeGreaterThanOrEqual(250);
      expect(elapsed).toBeLessThan(3000);
      expect((await orders.listOrders({ userId: c.userId })).orders).toHaveLength(0);
    });
  });

  it("answers DEADLINE_EXCEEDED, not UNAVAILABLE, when the caller's own deadline runs out first", async () => {
    await withHangingProducts("5s", async (own, c) => {
      // A bare HTTP/2 call waits for the server's own status, which a gRPC
      // client would replace with its local DEADLINE_EXCEEDED.
      const path = "/shopmesh.orders.v1.OrdersService/CreateOrder";
      const headers = { authorization: `Bearer ${c.token}` };
      for (const timeoutMs of [5, 300]) {
        const request = toBinary(
          CreateOrderRequestSchema,
          create(CreateOrderRequestSchema, {
            requestId: requestId(),
            items: [{ productId: catalog[0]!.id, quantity: 1 }],
          }),
        );
        const status = await rawUnaryCall(own.address, path, request, {
          timeoutMs,
          headers,
          ca: mesh.clientTls(undefined)?.ca,
        });
        expect([timeoutMs, status.code]).toEqual([timeoutMs, Code.DeadlineExceeded]);
      }
      const orders = mesh.clientAt("orders", own.address, c.token);
      expect((await orders.listOrders({ userId: c.userId })).orders).toHaveLength(0);
    });
  });

  it("answers UNAVAILABLE when products is stopped, stores nothing, and works again once it is back", async () => {
    const c = await signUpCustomer(mesh);
    const orders = mesh.client("orders", c.token);
    const request = { requestId: requestId(), items: [{ productId: catalog[0]!.id, quantity: 1 }] };
    const products = mesh.processes.get("products")!;
    await products.stop("SIGKILL");
    try {
      const error = await failure(orders.createOrder(request));
      expect(error.code).toBe(Code.Unavailable);
      expect((await orders.listOrders({ userId: c.userId })).orders).toHaveLength(0);
    } finally {
      // Same data directory, new port: restart orders pointing at it.
      await mesh.startService("products");
      await mesh.processes.get("orders")!.stop("SIGKILL");
      await mesh.startService("orders");
    }
    const retried = await mesh.client("orders", c.token).createOrder(request);
    expect(retried.order!.lines).toHaveLength(1);
  });
});

describe("durability", () => {
  it("keeps every acknowledged order across a SIGKILL of the orders process", async () => {
    const c = await signUpCustomer(mesh);
    const orders = mesh.client("orders", c.token);
    const acknowledged = await Promise.all(
      Array.from({ length: 30 }, (_, i) =>
        orders.createOrder({ requestId: `durable-${i}`, items: [{ productId: catalog[i % 3]!.id, quantity: i + 1 }] }),
      ),
    );
    await mesh.processes.get("orders")!.stop("SIGKILL");
    await mesh.startService("orders");
    const after = await mesh.client("orders", c.token).listOrders({ userId: c.userId, pageSize: 100 });
    expect(after.orders.map((o) => o.id).sort()).toEqual(acknowledged.map((a) => a.order!.id).sort());
    for (const order of after.orders) {
      const placed = acknowledged.find((a) => a.order!.id === order.id)!.order!;
      expect(order.lines).toEqual(placed.lines);
    }
  });
});
