// OrderStore on a real SQLite file: amounts up to the int64 maximum are
// written and read back exactly, on every read path and in the event.
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { int64Max, openDatabase, type OpenDatabase } from "@shopmesh/chassis";
import type { OrderLine } from "@shopmesh/sdk/orders/v1";
import * as schema from "../src/db/schema.js";
import { OrderStore } from "../src/order-store.js";
import { requestFingerprint } from "../src/request-fingerprint.js";

let dir: string;
let database: OpenDatabase<typeof schema>;

beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), "shopmesh-orders-"));
  database = openDatabase({
    path: join(dir, "orders.sqlite"),
    migrationsFolder: fileURLToPath(new URL("../drizzle", import.meta.url)),
    schema,
  });
});

afterEach(() => {
  database.close();
  rmSync(dir, { recursive: true, force: true });
});

const userId = "01900000-0000-7000-8000-000000000001";
const items = [
  { productId: "01900000-0000-7000-8000-0000000000a1", quantity: 1 },
  { productId: "01900000-0000-7000-8000-0000000000a2", quantity: 1 },
];

describe("OrderStore", () => {
  it("reads back amounts up to the int64 maximum exactly, by id, by request, by page and in the event", async () => {
    const store = new OrderStore(database);
    const lines = [
      { ...items[0]!, unitPriceMinor: int64Max - 1n },
      { ...items[1]!, unitPriceMinor: 1n },
    ];
    const { order } = store.place({
      userId,
      requestId: "r",
      requestFingerprint: requestFingerprint(items),
      currency: "EUR",
      totalMinor: int64Max,
      lines,
    });
    const amounts = (o: { totalMinor: bigint; lines: { unitPriceMinor: bigint }[] } | undefined) => [
      o?.totalMinor,
      o?.lines.map((l) => l.unitPriceMinor),
    ];
    const expected = [int64Max, [int64Max - 1n, 1n]];
    expect(amounts(order)).toEqual(expected);
    expect(amounts(store.byId(order.id))).toEqual(expected);
    expect(amounts(store.byRequest(userId, "r"))).toEqual(expected);
    expect(amounts(store.pageForUser(userId, undefined, 10)[0])).toEqual(expected);
    expect(store.byId(order.id)).toMatchObject({
      createdAt: order.createdAt,
      lines: [
        { lineNo: 0, quantity: 1 },
        { lineNo: 1, quantity: 1 },
      ],
    });
    expect(typeof store.byId(order.id)!.createdAt).toBe("number");
    const controller = new AbortController();
    const stream = store.events.follow(0, controller.signal);
    try {
      await stream.next(); // the heartbeat with the head
      const { value } = await stream.next();
      const placed = value?.event?.kind.case === "orderPlaced" ? value.event.kind.value.order : undefined;
      expect([placed?.total?.minorUnits, placed?.lines.map((l: OrderLine) => l.unitPrice?.minorUnits)]).toEqual(
        expected,
      );
    } finally {
      controller.abort();
      await stream.return(undefined);
    }
  });

  it("keeps the request's fingerprint, and leaves the first order in place for a second request with the same id", () => {
    const store = new OrderStore(database);
    const fingerprint = requestFingerprint(items);
    const lines = items.map((item) => ({ ...item, unitPriceMinor: 5n }));
    const first = store.place({
      userId,
      requestId: "r",
      requestFingerprint: fingerprint,
      currency: "EUR",
      totalMinor: 10n,
      lines,
    });
    const second = store.place({
      userId,
      requestId: "r",
      requestFingerprint: "other",
      currency: "EUR",
      totalMinor: 5n,
      lines: lines.slice(0, 1),
    });
    expect([first.created, second.created, second.order.id]).toEqual([true, false, first.order.id]);
    expect(second.order.requestFingerprint).toBe(fingerprint);
    expect(requestFingerprint(second.order.lines)).toBe(fingerprint);
    expect(store.byRequest(userId, " r ")).toBeUndefined();
  });

  it("pages the same with its cache of orders as without, whichever of a page's orders it already holds", () => {
    const cached = new OrderStore(database);
    const uncached = new OrderStore(database, { cacheEntries: 0 });
    const otherUser = "01900000-0000-7000-8000-000000000002";
    const place = (store: OrderStore, user: string, n: number) =>
      store.place({
        userId: user,
        requestId: `r${n}`,
        requestFingerprint: requestFingerprint(items),
        currency: "EUR",
        totalMinor: BigInt(n),
        lines: items.slice(0, 1 + (n % 2)).map((item) => ({ ...item, unitPriceMinor: BigInt(n) })),
      }).order;
    const placed = Array.from({ length: 7 }, (_, n) => place(uncached, n % 3 === 0 ? otherUser : userId, n));
    const pages = (store: OrderStore) => {
      const first = store.pageForUser(userId, undefined, 3);
      return [first, store.pageForUser(userId, first.at(-1)!.id, 3)];
    };
    const expected = pages(uncached);
    expect(expected.map((page) => page.map((order) => order.totalMinor))).toEqual([[5n, 4n, 2n], [1n]]);
    // Some of the page in the cache, then all of it: the same orders, lines and order either way.
    cached.byId(placed[4]!.id);
    expect(pages(cached)).toEqual(expected);
    expect(pages(cached)).toEqual(expected);
    // An order placed after the cache filled is on the next read of the first page.
    const newest = place(cached, userId, 8);
    expect(cached.pageForUser(userId, undefined, 3).map((order) => order.id)).toEqual([
      newest.id,
      ...expected[0]!.slice(0, 2).map((order) => order.id),
    ]);
    expect(cached.byId(newest.id)).toEqual(uncached.byId(newest.id));
  });
});
