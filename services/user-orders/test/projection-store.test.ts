// ProjectionStore on a real SQLite file: replays change nothing, and a batch
// is kept whole or not at all, position included.
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { create, fromBinary, toBinary } from "@bufbuild/protobuf";
import { timestampFromMs } from "@bufbuild/protobuf/wkt";
import { Code, type ConnectError } from "@connectrpc/connect";
import { int64Max, openDatabase, type OpenDatabase } from "@shopmesh/chassis";
import { OrderEventSchema, type OrderEvent } from "@shopmesh/sdk/orders/v1";
import { ProductEventSchema } from "@shopmesh/sdk/products/v1";
import { GetUserOrdersResponseSchema } from "@shopmesh/sdk/userorders/v1";
import { UserEventSchema } from "@shopmesh/sdk/users/v1";
import * as schema from "../src/db/schema.js";
import { eventualView } from "../src/eventual-view.js";
import type { EventSource } from "../src/projection/event-source.js";
import { Projection } from "../src/projection/projection.js";
import { ProjectionStore } from "../src/projection/projection-store.js";

/** The n-th order's id: a UUID, as orders issues, in the order they were placed. */
const orderIdOf = (n: number) => `00000000-0000-7000-8000-${String(n).padStart(12, "0")}`;

let dir: string;
let database: OpenDatabase<typeof schema>;
let store: ProjectionStore;

beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), "shopmesh-projection-"));
  database = openDatabase({
    path: join(dir, "projection.sqlite"),
    migrationsFolder: fileURLToPath(new URL("../drizzle", import.meta.url)),
    schema,
  });
  store = new ProjectionStore(database.sqlite);
});

afterEach(() => {
  database.close();
  rmSync(dir, { recursive: true, force: true });
});

function orderPlaced(
  sequence: number,
  orderId: string,
  quantities: number[],
  productOf = (line: number) => `p${line}`,
): OrderEvent {
  return create(OrderEventSchema, {
    sequence: BigInt(sequence),
    occurTime: timestampFromMs(1_700_000_000_000 + sequence),
    kind: {
      case: "orderPlaced",
      value: {
        order: {
          id: orderId,
          userId: "u1",
          total: { currencyCode: "EUR", minorUnits: BigInt(quantities.reduce((a, b) => a + b, 0) * 100) },
          createTime: timestampFromMs(1_700_000_000_000),
          lines: quantities.map((quantity, i) => ({
            productId: productOf(i),
            quantity,
            unitPrice: { currencyCode: "EUR", minorUnits: 100n },
          })),
        },
      },
    },
  });
}

function tables() {
  return {
    orders: database.sqlite.prepare("SELECT * FROM orders ORDER BY id").all(),
    lines: database.sqlite.prepare("SELECT * FROM order_lines ORDER BY order_id, line_no").all(),
    products: database.sqlite.prepare("SELECT * FROM products ORDER BY id").all(),
  };
}

describe("ProjectionStore.applyBatch", () => {
  it("applies events in order, stores the position, and skips every event it already has", () => {
    const events = [orderPlaced(1, orderIdOf(1), [1, 2]), orderPlaced(2, orderIdOf(2), [3])];
    expect(store.applyBatch("orders", events)).toMatchObject({
      applied: 2,
      skipped: 0,
      missing: 0,
      position: { sequence: 2 },
    });
    const before = tables();
    expect(before.lines).toHaveLength(3);

    // The same events again, and an overlap with one new event.
    expect(store.applyBatch("orders", events)).toMatchObject({ applied: 0, skipped: 2 });
    expect(tables()).toEqual(before);
    expect(store.applyBatch("orders", [events[1]!, orderPlaced(3, orderIdOf(3), [4])])).toMatchObject({
      applied: 1,
      skipped: 1,
      position: { sequence: 3 },
    });
    expect(store.position("orders").sequence).toBe(3);
    expect(store.position("orders").eventTime).toBe(1_700_000_000_003);
    expect(store.position("products").sequence).toBe(0);
  });

  it("keeps the last version of a changed product", () => {
    const product = (sequence: number, price: bigint, kind: "productCreated" | "productChanged") =>
      create(ProductEventSchema, {
        sequence: BigInt(sequence),
        kind: {
          case: kind,
          value: {
            product: { id: "p1", name: "Tea", description: "", price: { currencyCode: "EUR", minorUnits: price } },
          },
        },
      });
    store.applyBatch("products", [product(1, 450n, "productCreated"), product(2, 500n, "productChanged")]);
    expect(store.products(["p1"]).get("p1")?.priceMinor).toBe(500n);
    // A replay of the creation does not bring the old price back.
    store.applyBatch("products", [product(1, 450n, "productCreated")]);
    expect(store.products(["p1"]).get("p1")?.priceMinor).toBe(500n);
  });

  it("keeps nothing of a batch that fails part-way, position included", () => {
    store.applyBatch("orders", [orderPlaced(1, orderIdOf(1), [1])]);
    database.sqlite.exec(
      `CREATE TRIGGER refuse_o3 BEFORE INSERT ON orders WHEN NEW.id = '${orderIdOf(3)}' BEGIN SELECT RAISE(ABORT, 'refused'); END`,
    );
    const before = tables();
    expect(() =>
      store.applyBatch("orders", [orderPlaced(2, orderIdOf(2), [1]), orderPlaced(3, orderIdOf(3), [1])]),
    ).toThrow(/refused/);
    expect(tables()).toEqual(before);
    expect(store.position("orders").sequence).toBe(1);
  });

  it("counts sequence numbers missing between events", () => {
    expect(
      store.applyBatch("orders", [orderPlaced(1, orderIdOf(1), [1]), orderPlaced(4, orderIdOf(4), [1])]).missing,
    ).toBe(2);
  });
});

describe("amounts in the projection", () => {
  it("reach an EVENTUAL view exactly, up to the int64 maximum", () => {
    const eur = (minorUnits: bigint) => ({ currencyCode: "EUR", minorUnits });
    const product = (sequence: number, id: string, price: bigint) =>
      create(ProductEventSchema, {
        sequence: BigInt(sequence),
        kind: { case: "productCreated", value: { product: { id, name: id, price: eur(price) } } },
      });
    store.applyBatch("users", [
      create(UserEventSchema, {
        sequence: 1n,
        kind: { case: "userRegistered", value: { user: { id: "u1", email: "u1@shopmesh.test", displayName: "U" } } },
      }),
    ]);
    store.applyBatch("products", [product(1, "p0", int64Max), product(2, "p1", 2n ** 53n + 1n)]);
    store.applyBatch("orders", [
      create(OrderEventSchema, {
        sequence: 1n,
        kind: {
          case: "orderPlaced",
          value: {
            order: {
              id: orderIdOf(1),
              userId: "u1",
              total: eur(int64Max),
              createTime: timestampFromMs(1_700_000_000_000),
              lines: [
                { productId: "p0", quantity: 1, unitPrice: eur(int64Max - 2n ** 53n - 1n) },
                { productId: "p1", quantity: 1, unitPrice: eur(2n ** 53n + 1n) },
              ],
            },
          },
        },
      }),
    ]);

    // A projection that never starts following: the view reads only the store.
    const projection = new Projection(database.sqlite, {} as EventSource, { info() {}, warn() {} });
    const view = fromBinary(
      GetUserOrdersResponseSchema,
      toBinary(GetUserOrdersResponseSchema, eventualView(projection, { userId: "u1", pageSize: 10, pageToken: "" })),
    );
    const order = view.orders[0]!;
    expect(order.total?.minorUnits).toBe(int64Max);
    expect(order.lines.map((line) => [line.unitPrice?.minorUnits, line.product?.currentPrice?.minorUnits])).toEqual([
      [int64Max - 2n ** 53n - 1n, int64Max],
      [2n ** 53n + 1n, 2n ** 53n + 1n],
    ]);
  });
});

describe.each([
  ["its caches", undefined],
  ["no cache", 0],
])("reads through a store with %s", (_, cacheEntries) => {
  const eur = (minorUnits: bigint) => ({ currencyCode: "EUR", minorUnits });
  const product = (sequence: number, name: string, price: bigint) =>
    create(ProductEventSchema, {
      sequence: BigInt(sequence),
      kind: { case: "productChanged", value: { product: { id: "p0", name, price: eur(price) } } },
    });
  const user = (sequence: number, displayName: string) =>
    create(UserEventSchema, {
      sequence: BigInt(sequence),
      kind: { case: "userRegistered", value: { user: { id: "u1", email: "u1@shopmesh.test", displayName } } },
    });
  const view = (projection: Projection, pageToken = "", pageSize = 10) =>
    eventualView(projection, { userId: "u1", pageSize, pageToken });

  let cached: ProjectionStore;
  let projection: Projection;
  beforeEach(() => {
    // A projection that never starts following: its views read only its store.
    projection = new Projection(database.sqlite, {} as EventSource, { info() {}, warn() {} }, { cacheEntries });
    cached = projection.store;
    cached.applyBatch("users", [user(1, "First")]);
    cached.applyBatch("products", [product(1, "Tea", 450n)]);
    cached.applyBatch("orders", [
      orderPlaced(1, orderIdOf(1), [1, 2]),
      orderPlaced(2, orderIdOf(2), [3]),
      orderPlaced(3, orderIdOf(3), [4]),
    ]);
  });

  it("gives a product's and a user's new row once an event changed them", () => {
    const before = view(projection);
    expect(before.profile?.displayName).toBe("First");
    expect(before.orders[0]?.lines[0]?.product?.currentPrice?.minorUnits).toBe(450n);

    cached.applyBatch("products", [product(2, "Green tea", 500n)]);
    cached.applyBatch("users", [user(2, "Second")]);
    const after = view(projection);
    expect(after.profile?.displayName).toBe("Second");
    expect(after.orders.map((order) => order.lines[0]?.product?.name)).toEqual(["Green tea", "Green tea", "Green tea"]);
    expect(after.orders[0]?.lines[0]?.product?.currentPrice?.minorUnits).toBe(500n);
    // The line keeps the price paid; only the product's details moved.
    expect(after.orders[0]?.lines[0]?.unitPrice?.minorUnits).toBe(100n);
  });

  it("keeps the old row of a product whose change was rolled back", () => {
    expect(cached.products(["p0"]).get("p0")?.priceMinor).toBe(450n);
    database.sqlite.exec(
      "CREATE TRIGGER refuse_products_position_insert BEFORE INSERT ON stream_positions WHEN NEW.stream = 'products' BEGIN SELECT RAISE(ABORT, 'refused'); END",
    );
    database.sqlite.exec(
      "CREATE TRIGGER refuse_products_position_update BEFORE UPDATE ON stream_positions WHEN NEW.stream = 'products' BEGIN SELECT RAISE(ABORT, 'refused'); END",
    );
    expect(() => cached.applyBatch("products", [product(2, "Green tea", 500n)])).toThrow(/refused/);
    expect(cached.products(["p0"]).get("p0")?.priceMinor).toBe(450n);
    expect(view(projection).orders[0]?.lines[0]?.product?.name).toBe("Tea");
  });

  it("refuses a page whose view would be over 4 MiB with RESOURCE_EXHAUSTED naming page_size", () => {
    const wordy = create(ProductEventSchema, {
      sequence: 2n,
      kind: {
        case: "productChanged",
        value: { product: { id: "p0", name: "Wordy", description: "w".repeat(2_000), price: eur(450n) } },
      },
    });
    cached.applyBatch("products", [wordy]);
    const hundredLines = Array.from({ length: 100 }, () => 1);
    const orders = Array.from({ length: 21 }, (_, i) => orderPlaced(4 + i, `big-${i}`, hundredLines, () => "p0"));
    cached.applyBatch("orders", orders);
    const refusal = (() => {
      try {
        view(projection, "", 100);
      } catch (error) {
        return error as ConnectError;
      }
    })();
    expect(refusal?.code).toBe(Code.ResourceExhausted);
    expect(refusal?.rawMessage).toMatch(/^page_size: the view of these 24 orders would take about 4\.\d MiB/);
    expect(view(projection, "", 10).orders).toHaveLength(10);
  });

  it("pages through the orders, newest first, the same on every read", () => {
    const first = view(projection, "", 2);
    expect(first.orders.map((order) => order.orderId)).toEqual([orderIdOf(3), orderIdOf(2)]);
    expect(first.orders[1]?.lines.map((line) => line.quantity)).toEqual([3]);
    const second = view(projection, first.nextPageToken, 2);
    expect(second.orders.map((order) => order.orderId)).toEqual([orderIdOf(1)]);
    expect(second.orders[0]?.lines.map((line) => line.quantity)).toEqual([1, 2]);
    expect(second.nextPageToken).toBe("");
    // Read again, from the caches where there are any: the same answers.
    expect(toBinary(GetUserOrdersResponseSchema, view(projection, "", 2))).toEqual(
      toBinary(GetUserOrdersResponseSchema, first),
    );
    expect(view(projection, first.nextPageToken, 2).orders[0]?.lines.map((line) => line.quantity)).toEqual([1, 2]);
    // A token of the right shape whose cursor no order id could be.
    const madeUp = Buffer.from('{"before":"zzz"}').toString("base64url");
    expect(() => view(projection, madeUp, 2)).toThrow("page_token: is not a token this service issued");
  });

  it("shows an order applied after its user's pages were read, on every page", () => {
    const ids = (response: ReturnType<typeof view>) => response.orders.map((order) => order.orderId);
    const first = view(projection, "", 2);
    expect([ids(first), ids(view(projection, first.nextPageToken, 2))]).toEqual([
      [orderIdOf(3), orderIdOf(2)],
      [orderIdOf(1)],
    ]);
    cached.applyBatch("orders", [orderPlaced(4, orderIdOf(4), [5])]);
    const newest = view(projection, "", 2);
    expect([ids(newest), ids(view(projection, newest.nextPageToken, 2))]).toEqual([
      [orderIdOf(4), orderIdOf(3)],
      [orderIdOf(2), orderIdOf(1)],
    ]);
    expect(ids(view(projection))).toEqual([orderIdOf(4), orderIdOf(3), orderIdOf(2), orderIdOf(1)]);
  });

  it("shows a product that arrives after its order", () => {
    // Line 2 of o1 names p1, which the products stream has not carried yet.
    expect(view(projection).orders.at(-1)?.lines[1]?.product).toBeUndefined();
    cached.applyBatch("products", [
      create(ProductEventSchema, {
        sequence: 2n,
        kind: { case: "productCreated", value: { product: { id: "p1", name: "Cup", price: eur(900n) } } },
      }),
    ]);
    expect(view(projection).orders.at(-1)?.lines[1]?.product?.name).toBe("Cup");
  });
});
